# SIGHUP configuration reload of the real tallyd.
if(TARGET tally_harness)
  add_executable(test_reload ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_reload.c)
  target_link_libraries(test_reload PRIVATE tally_harness)
  add_test(NAME test_reload COMMAND test_reload)
  set_tests_properties(test_reload PROPERTIES LABELS integration TIMEOUT 120)

  # A resend of a submission applied before a reload lowered max_samples
  # or max_msg_bytes is answered DUPLICATE (PROTOCOL.md 11.2).
  add_executable(test_resend_limits ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_resend_limits.c)
  target_link_libraries(test_resend_limits PRIVATE tally_harness)
  add_test(NAME test_resend_limits COMMAND test_resend_limits)
  set_tests_properties(test_resend_limits PROPERTIES LABELS integration TIMEOUT 120)
endif()
