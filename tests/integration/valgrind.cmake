# valgrind_integration: integration tests with tallyd under valgrind memcheck
# (tests/integration/valgrind.sh): no leak, no invalid access in any tallyd
# the tests start.  Label "valgrind", not "integration": it takes minutes
# (tallyd runs 10-50 times slower) and needs valgrind, so select it with
# `ctest -L valgrind`; exclude it with `-LE valgrind`.  Only in normal
# builds: ASan and valgrind do not mix.  Left out: test_notify_daemon, whose
# stalled-loop timing does not survive valgrind, and install_tree, which
# starts no tallyd.
find_program(TALLY_VALGRIND valgrind)
if(TARGET tally_harness AND TALLY_VALGRIND AND NOT TALLY_SANITIZE AND NOT TALLY_FUZZ)
  add_test(NAME valgrind_integration
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/valgrind.sh ${CMAKE_BINARY_DIR}
                   -E "^(test_notify_daemon|install_tree)$")
  set_tests_properties(valgrind_integration PROPERTIES
                       LABELS valgrind TIMEOUT 3600 RUN_SERIAL TRUE SKIP_RETURN_CODE 77)
endif()
