# Integration tests of the `tally` command and libtally against the real
# tallyd over real sockets (ipc:// endpoints of the daemon harness).
# cli_support.c runs the command as a child process and rebuilds tables of
# tallies from its JSON output (read by cli_json.c).
if(TARGET tally_harness AND TARGET tally_cli AND TARGET tally_shared)
  add_library(tally_cli_support STATIC ${CMAKE_CURRENT_SOURCE_DIR}/integration/cli_support.c
                                       ${CMAKE_CURRENT_SOURCE_DIR}/integration/cli_json.c)
  target_link_libraries(tally_cli_support PUBLIC tally_harness m)
  # TALLYD_BIN, TALLY_SHARED_DATA (the figures, kept in the repository
  # under client/demo) and TALLY_SOURCE_DIR come with tally_harness.
  target_compile_definitions(tally_cli_support PUBLIC TALLY_BIN="$<TARGET_FILE:tally_cli>")
  add_dependencies(tally_cli_support tallyd tally_cli)

  # One executable per area; each test case starts its own daemon.  The
  # ones driving libtally directly link the shared library, whose only
  # exported symbols are tally_* (the harness has its own codec).
  foreach(area get history keys push ratio report spool watch)
    set(t test_cli_${area})
    if(NOT EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/integration/${t}.c)
      continue()
    endif()
    add_executable(${t} ${CMAKE_CURRENT_SOURCE_DIR}/integration/${t}.c)
    target_link_libraries(${t} PRIVATE tally_cli_support tally_shared)
    add_dependencies(${t} tallyd tally_cli)
    add_test(NAME ${t} COMMAND ${t})
    set_tests_properties(${t} PROPERTIES LABELS integration TIMEOUT 180)
  endforeach()
  # test_cli_history reads history.db while tallyd writes it, as an
  # analyst's script would.
  if(TARGET test_cli_history)
    target_link_libraries(test_cli_history PRIVATE PkgConfig::SQLITE)
  endif()
endif()

# A township computer whose link is down, then back (test_link_down.py):
# in a network namespace of its own, where only loopback exists and
# starts down, the real tallyd and `tally` (root or user namespaces; 77,
# skipped, where none can be made).
if(TARGET tallyd AND TARGET tally_cli)
  add_test(NAME test_link_down
    COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_link_down.py
            $<TARGET_FILE:tallyd> $<TARGET_FILE:tally_cli>)
  set_tests_properties(test_link_down PROPERTIES LABELS integration TIMEOUT 180
    SKIP_RETURN_CODE 77)
endif()
