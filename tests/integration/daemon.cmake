# Black-box tests of tallyd: the real binary, driven over real ZeroMQ
# sockets (ipc:// endpoints in a private temporary directory).
#
# tally_harness (tests/integration/harness.h) is the reusable harness: other
# integration tests link it and get TALLYD_BIN, TALLY_SHARED_DATA and
# TALLY_SOURCE_DIR as compile definitions, and a build dependency on tallyd.
if(TARGET tallyd)
  find_package(Threads REQUIRED)
  add_library(tally_harness STATIC ${CMAKE_CURRENT_SOURCE_DIR}/integration/harness.c)
  target_include_directories(tally_harness PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/integration)
  target_link_libraries(tally_harness PUBLIC tallyproto PkgConfig::ZMQ PkgConfig::CMOCKA
                                             Threads::Threads m)
  target_compile_definitions(tally_harness PUBLIC
    TALLYD_BIN="$<TARGET_FILE:tallyd>"
    TALLY_SHARED_DATA="${CMAKE_SOURCE_DIR}/../shared/data"
    TALLY_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
  add_dependencies(tally_harness tallyd)

  # One executable per area; each test case starts its own daemon.
  foreach(area basic reject stream gaoguan)
    set(t test_daemon_${area})
    add_executable(${t} ${CMAKE_CURRENT_SOURCE_DIR}/integration/${t}.c)
    target_link_libraries(${t} PRIVATE tally_harness)
    add_dependencies(${t} tallyd)
    add_test(NAME ${t} COMMAND ${t})
    set_tests_properties(${t} PROPERTIES LABELS integration TIMEOUT 120)
  endforeach()
endif()
