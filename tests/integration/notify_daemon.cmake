# systemd's notify protocol as tallyd speaks it (READY, WATCHDOG, RELOADING, STOPPING).
if(TARGET tally_harness)
  add_executable(test_notify_daemon ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_notify_daemon.c)
  target_link_libraries(test_notify_daemon PRIVATE tally_harness)
  add_test(NAME test_notify_daemon COMMAND test_notify_daemon)
  set_tests_properties(test_notify_daemon PROPERTIES LABELS integration TIMEOUT 120)
endif()
