# libFuzzer target over tallyd's request path, in-process (TALLY_FUZZ=ON,
# clang only).  The parts are handed checking sinks, as tallyd_start.c hands
# them the sockets' sinks: nothing is replaced at link time.
add_executable(fuzz_ingest ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_ingest.c)
target_link_libraries(fuzz_ingest PRIVATE tallydcore)
target_link_options(fuzz_ingest PRIVATE -fsanitize=fuzzer)

# Regenerates tests/fuzz/corpus/ingest: gen_ingest_corpus <dir>.
add_executable(gen_ingest_corpus ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/gen_ingest_corpus.c)
target_link_libraries(gen_ingest_corpus PRIVATE tallyproto)

# 20 s smoke run, as fuzz_decode_smoke: new inputs go to a fresh temporary
# directory given first; the committed seeds are given second, only read.
add_test(NAME fuzz_ingest_smoke
         COMMAND sh -c "d=$(mktemp -d) && \"$0\" -max_total_time=20 -timeout=30 -artifact_prefix=\"$1/fuzz_ingest-\" \"$d\" \"$2\"; rc=$?; rm -rf \"$d\"; exit $rc"
                 $<TARGET_FILE:fuzz_ingest> ${CMAKE_CURRENT_BINARY_DIR}
                 ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/ingest)
set_tests_properties(fuzz_ingest_smoke PROPERTIES LABELS fuzz TIMEOUT 120)
