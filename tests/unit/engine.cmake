tally_unit_test(test_engine SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_engine.c LIBS tallydcore)
# A ratio's [num, den] with decimal scales (PROTOCOL.md 10.6), and the
# scales the catalog gives the engine.
tally_unit_test(test_engine_ratio SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_engine_ratio.c
                LIBS tallydcore)
tally_unit_test(test_engine_model SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_engine_model.c LIBS tallydcore)
tally_unit_test(test_intern SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_intern.c LIBS tallydcore)
tally_unit_test(test_townlist SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_townlist.c LIBS tallydcore)
