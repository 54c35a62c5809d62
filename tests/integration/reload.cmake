# SIGHUP configuration reload of the real tallyd.
if(TARGET tally_harness)
  add_executable(test_reload ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_reload.c)
  target_link_libraries(test_reload PRIVATE tally_harness)
  add_test(NAME test_reload COMMAND test_reload)
  set_tests_properties(test_reload PROPERTIES LABELS integration TIMEOUT 120)
endif()
