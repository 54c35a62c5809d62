# Black-box tests of tallyd: the real binary, driven over real ZeroMQ
# sockets (ipc:// endpoints in a private temporary directory).
#
# tally_harness (tests/integration/harness.h, defined in tests/CMakeLists.txt)
# is the reusable harness.
if(TARGET tally_harness)
  # One executable per area; each test case starts its own daemon.
  foreach(area basic reject stream gaoguan log)
    set(t test_daemon_${area})
    add_executable(${t} ${CMAKE_CURRENT_SOURCE_DIR}/integration/${t}.c)
    target_link_libraries(${t} PRIVATE tally_harness)
    add_dependencies(${t} tallyd)
    add_test(NAME ${t} COMMAND ${t})
    set_tests_properties(${t} PROPERTIES LABELS integration TIMEOUT 120)
  endforeach()
endif()
