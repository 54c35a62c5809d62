tally_unit_test(test_config SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_config.c LIBS tallydcore)
# The test loads systemd/tallyd.conf.example from the source tree.
target_compile_definitions(test_config PRIVATE TALLY_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
tally_unit_test(test_config_catalog SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_config_catalog.c
                LIBS tallydcore)
# tallyd --check-config -s: a configuration against a saved state.
tally_unit_test(test_config_state SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_config_state.c
                LIBS tallydcore)
tally_unit_test(test_catalog_view SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_catalog_view.c
                LIBS tallydcore)
