# notify.c is compiled into the test directly rather than taken from
# tallydcore: the module depends on nothing else in the daemon, and the test
# then builds even while other daemon modules are being changed.
tally_unit_test(test_notify SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_notify.c
  ${CMAKE_SOURCE_DIR}/daemon/notify.c LIBS tallyproto)
target_include_directories(test_notify PRIVATE ${CMAKE_SOURCE_DIR}/daemon)
