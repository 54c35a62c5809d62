# A short run of the benchmark (bench/run.sh --smoke, about 5 s) against the
# tallyd just built, so the load generator and the scenario script never
# rot.  It checks only that the run completes and prints its tables (the
# CPU by thread with a loop that used some): no figure is judged (timing
# belongs to the benchmark, not to the tests).
if(TARGET tallyd AND TARGET tally-bench AND TARGET tally-zmq-baseline)
  find_program(TALLY_BASH bash)
  find_package(Python3 COMPONENTS Interpreter QUIET)
  if(TALLY_BASH AND Python3_Interpreter_FOUND)
    add_test(NAME bench_smoke
      COMMAND ${TALLY_BASH} -c [=[
out=$("$0" "$1" --smoke --build "$2") || { printf '%s\n' "$out"; exit 1; }
printf '%s\n' "$out"
grep -q '^| scenario |' <<<"$out" && grep -q '^| s1-never-t25-sub1 |' <<<"$out" &&
grep -q '^| scenario | loop | journal | history |' <<<"$out" &&
grep -Eq '^\| s1-never-t25-sub1 \| (0\.0[1-9]|0\.[1-9][0-9]|[1-9][0-9]*\.[0-9]{2}) \|' <<<"$out" &&
grep -q '^disk, group commit alone at 50000 records/s' <<<"$out" &&
grep -q '^web-s1-t25: with 20 browsers' <<<"$out"
]=] ${TALLY_BASH} ${CMAKE_SOURCE_DIR}/bench/run.sh ${CMAKE_BINARY_DIR})
    set_tests_properties(bench_smoke PROPERTIES LABELS bench TIMEOUT 180)
  else()
    message(STATUS "bench_smoke skipped: needs bash and python3")
  endif()
endif()
