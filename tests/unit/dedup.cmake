tally_unit_test(test_dedup SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_dedup.c LIBS tallydcore)
