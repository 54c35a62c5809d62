# libFuzzer target over config_parse_text (TALLY_FUZZ=ON, clang only).
add_executable(fuzz_config ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_config.c)
target_link_libraries(fuzz_config PRIVATE tallydcore)
target_link_options(fuzz_config PRIVATE -fsanitize=fuzzer)

# 20 s smoke run, as fuzz_decode_smoke: new inputs go to a fresh temporary
# directory given first; the committed seeds are given second, only read.
add_test(NAME fuzz_config_smoke
         COMMAND sh -c "d=$(mktemp -d) && \"$0\" -max_total_time=20 -artifact_prefix=\"$1/fuzz_config-\" \"$d\" \"$2\"; rc=$?; rm -rf \"$d\"; exit $rc"
                 $<TARGET_FILE:fuzz_config> ${CMAKE_CURRENT_BINARY_DIR}
                 ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/config)
set_tests_properties(fuzz_config_smoke PROPERTIES LABELS fuzz TIMEOUT 120)
