# tallyd secured with CURVE (keys, ZAP, revocation by reload) and the
# per-township rate limit (test_security), and the tally command with keys
# (test_security_cli), against the real binaries; both share the fixture of
# security_test_util.h.  tally_cli_support (cli.cmake) brings the harness
# and TALLY_BIN.
if(TARGET tally_cli_support)
  foreach(t test_security test_security_cli)
    add_executable(${t} ${CMAKE_CURRENT_SOURCE_DIR}/integration/${t}.c)
    target_link_libraries(${t} PRIVATE tally_cli_support)
    add_dependencies(${t} tallyd tally_cli)
    add_test(NAME ${t} COMMAND ${t})
    set_tests_properties(${t} PROPERTIES LABELS integration TIMEOUT 180)
  endforeach()
endif()
