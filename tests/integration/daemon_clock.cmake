# tallyd stopped and started again with its clock moved past a midnight,
# a year end or a few hours (test_daemon_clock.c): the daemon runs under
# libfaketime, and what it serves at once is the new day's.  Each test case
# starts its own daemons; skipped where libfaketime is not installed.
if(TARGET tally_harness AND TARGET tally_shared)
  add_executable(test_daemon_clock ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_daemon_clock.c)
  target_link_libraries(test_daemon_clock PRIVATE tally_harness tally_shared)
  add_dependencies(test_daemon_clock tallyd)
  add_test(NAME test_daemon_clock COMMAND test_daemon_clock)
  set_tests_properties(test_daemon_clock PROPERTIES LABELS integration TIMEOUT 180)
endif()
