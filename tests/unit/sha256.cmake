tally_unit_test(test_sha256 SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_sha256.c LIBS tallydcore)
