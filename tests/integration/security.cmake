# tallyd secured with CURVE (keys, ZAP, revocation by reload), the
# per-township rate limit, and the tally command with keys, against the
# real binaries.  tally_cli_support (cli.cmake) brings the harness and
# TALLY_BIN.
if(TARGET tally_cli_support)
  add_executable(test_security ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_security.c)
  target_link_libraries(test_security PRIVATE tally_cli_support)
  add_dependencies(test_security tallyd tally_cli)
  add_test(NAME test_security COMMAND test_security)
  set_tests_properties(test_security PROPERTIES LABELS integration TIMEOUT 180)
endif()
