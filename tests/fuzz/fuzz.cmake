# libFuzzer targets; included by tests/CMakeLists.txt only when TALLY_FUZZ=ON
# (clang).  The whole tree is then compiled with -fsanitize=fuzzer-no-link,
# so only the fuzzer executables add the libFuzzer main.
add_executable(fuzz_decode ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_decode.c)
target_link_libraries(fuzz_decode PRIVATE tallyproto)
target_link_options(fuzz_decode PRIVATE -fsanitize=fuzzer)

# Regenerates tests/fuzz/corpus/decode: gen_corpus <dir>.
add_executable(gen_corpus ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/gen_corpus.c)
target_link_libraries(gen_corpus PRIVATE tallyproto)

# 20 s smoke run.  New inputs go to a fresh temporary directory given first;
# the committed seed corpus is given second and is only read.
add_test(NAME fuzz_decode_smoke
         COMMAND sh -c "d=$(mktemp -d) && \"$0\" -max_total_time=20 -artifact_prefix=\"$1/fuzz_decode-\" \"$d\" \"$2\"; rc=$?; rm -rf \"$d\"; exit $rc"
                 $<TARGET_FILE:fuzz_decode> ${CMAKE_CURRENT_BINARY_DIR}
                 ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/decode)
set_tests_properties(fuzz_decode_smoke PROPERTIES LABELS fuzz TIMEOUT 120)
