# What one peer can make tallyd hold (unread snapshots, subscriptions, a
# subscribe loop, connections), against the real daemon; the tally command
# is run once to show what a client is told.  tally_cli_support (cli.cmake)
# brings the harness and TALLY_BIN.
if(TARGET tally_cli_support)
  add_executable(test_limits ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_limits.c)
  target_link_libraries(test_limits PRIVATE tally_cli_support)
  add_dependencies(test_limits tallyd tally_cli)
  add_test(NAME test_limits COMMAND test_limits)
  set_tests_properties(test_limits PROPERTIES LABELS integration TIMEOUT 180)
endif()
