tally_unit_test(test_proto SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_proto.c LIBS tallyproto)
tally_unit_test(test_proto_decode SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_proto_decode.c LIBS tallyproto)
tally_unit_test(test_proto_catalog SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_proto_catalog.c LIBS tallyproto)
tally_unit_test(test_proto_history SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_proto_history.c LIBS tallyproto)
