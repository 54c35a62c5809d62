# libFuzzer target over the CSV that `tally push` reads (TALLY_FUZZ=ON,
# clang only).
add_executable(fuzz_csv ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_csv.c)
target_link_libraries(fuzz_csv PRIVATE tallyclicore)
target_link_options(fuzz_csv PRIVATE -fsanitize=fuzzer)

# 20 s smoke run, as fuzz_decode_smoke: new inputs go to a fresh temporary
# directory given first; the committed seeds are given second, only read.
add_test(NAME fuzz_csv_smoke
         COMMAND sh -c "d=$(mktemp -d) && \"$0\" -max_total_time=20 -artifact_prefix=\"$1/fuzz_csv-\" \"$d\" \"$2\"; rc=$?; rm -rf \"$d\"; exit $rc"
                 $<TARGET_FILE:fuzz_csv> ${CMAKE_CURRENT_BINARY_DIR}
                 ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/csv)
set_tests_properties(fuzz_csv_smoke PROPERTIES LABELS fuzz TIMEOUT 120)
