tally_unit_test(test_zsock SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_zsock.c LIBS tallydcore)
tally_unit_test(test_zsock_send SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_zsock_send.c LIBS tallydcore)
# test_arrival_after_eagain (in test_zsock) injects a message right after a receive's EAGAIN.
target_link_options(test_zsock PRIVATE -Wl,--wrap=zmq_msg_recv)
