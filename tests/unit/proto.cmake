tally_unit_test(test_proto SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_proto.c LIBS tallyproto)
