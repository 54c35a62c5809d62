tally_unit_test(test_journal SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_journal.c LIBS tallydcore)
