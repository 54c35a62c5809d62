# The engine across a restart: a checkpoint loaded, the journal replayed
# and one tick to the clock's now equal an engine that ran through.
tally_unit_test(test_engine_restart SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_engine_restart.c
                LIBS tallydcore)
