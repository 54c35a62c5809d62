# Durability of the real tallyd: crashes (SIGKILL) and SIGTERM under load
# from libtally client processes, checkpoints, a torn journal tail, a
# corrupt record, damaged checkpoints, a full disk (tmpfs, needs root;
# skipped otherwise), files of a newer format version, a state directory
# shared by two daemons or missing a journal segment.  Four executables
# so that ctest -j can run them side by side; each test case starts its own
# daemon.
if(TARGET tally_harness AND TARGET tally_static)
  add_library(tally_durability_common STATIC
    ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_durability_common.c)
  target_link_libraries(tally_durability_common PUBLIC tally_harness tally_static tallyproto
                                                       PkgConfig::ZMQ PkgConfig::CMOCKA)
  foreach(part load files disk state)
    set(t test_durability_${part})
    add_executable(${t} ${CMAKE_CURRENT_SOURCE_DIR}/integration/${t}.c)
    target_link_libraries(${t} PRIVATE tally_durability_common)
    target_compile_definitions(${t} PRIVATE TALLYD_BIN="$<TARGET_FILE:tallyd>")
    add_dependencies(${t} tallyd)
    add_test(NAME ${t} COMMAND ${t})
    set_tests_properties(${t} PROPERTIES LABELS integration TIMEOUT 300)
  endforeach()
endif()

# A state directory written by an earlier version (tests/fixtures/state-*/,
# made by tests/fixtures/make-state.sh) loads with every figure intact:
# checkpoint, journal records after it, history.db.
if(TARGET tallyd AND TARGET tally_cli)
  add_test(NAME test_state_compat
    COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_state_compat.py
            $<TARGET_FILE:tallyd> $<TARGET_FILE:tally_cli> ${PROJECT_SOURCE_DIR})
  set_tests_properties(test_state_compat PROPERTIES LABELS integration TIMEOUT 60)
endif()

# Backups of a running tallyd (SIGUSR1, [backup]): each starts a tallyd
# that holds exactly what was acknowledged before it, under load too.
if(TARGET tallyd AND TARGET tally_cli)
  add_test(NAME test_daemon_backup
    COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_daemon_backup.py
            $<TARGET_FILE:tallyd> $<TARGET_FILE:tally_cli>)
  set_tests_properties(test_daemon_backup PROPERTIES LABELS integration TIMEOUT 180)
endif()

# Checkpoints built by a child process: the loop serves meanwhile, a
# child killed costs only its checkpoint, a stop does not wait for one.
if(TARGET tally_harness)
  add_executable(test_checkpoint_child ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_checkpoint_child.c)
  target_link_libraries(test_checkpoint_child PRIVATE tally_harness)
  add_test(NAME test_checkpoint_child COMMAND test_checkpoint_child)
  set_tests_properties(test_checkpoint_child PROPERTIES LABELS integration TIMEOUT 120)
endif()
