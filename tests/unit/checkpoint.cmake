tally_unit_test(test_checkpoint SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_checkpoint.c LIBS tallydcore)
tally_unit_test(test_checkpoint_engine SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_checkpoint_engine.c LIBS tallydcore)
