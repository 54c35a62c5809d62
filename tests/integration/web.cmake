# tally-web against the real tallyd: HTTP, the WebSocket stream, /metrics
# (with promtool when installed), tokens; the test is Python with its
# standard library only (tests/integration/test_web.py).
if(TARGET tally_web AND TARGET tallyd AND TARGET tally_cli)
  add_test(NAME test_web
    COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_web.py
            $<TARGET_FILE:tallyd> $<TARGET_FILE:tally_cli> $<TARGET_FILE:tally_web>
            ${PROJECT_SOURCE_DIR})
  set_tests_properties(test_web PROPERTIES LABELS integration TIMEOUT 180)
endif()

# tally-web's start-up and the API's edges (test_web_api.py): --listen
# with a host name, or where nothing can listen; /api/v1/range as `tally
# history --json`; names refused by /api/v1/tallies as by /api/v1/period;
# 503s that say tallyd is not running; WebSocket upgrades refused with an
# answer; a configuration file's token others can read; the man page's
# options; the unit's IP address filter.
if(TARGET tally_web AND TARGET tallyd AND TARGET tally_cli)
  add_test(NAME test_web_api
    COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_web_api.py
            $<TARGET_FILE:tallyd> $<TARGET_FILE:tally_cli> $<TARGET_FILE:tally_web>
            ${PROJECT_SOURCE_DIR})
  set_tests_properties(test_web_api PROPERTIES LABELS integration TIMEOUT 180)
endif()

# tally-web and a tallyd secured with CURVE: a subscriber key revoked by a
# reload and admitted again (the link's state in /metrics, recovery by
# itself, a live update afterwards), its log's priorities under journald,
# -V, and the unit's LoadCredential= guidance (test_web_keys.py).
if(TARGET tally_web AND TARGET tallyd AND TARGET tally_cli)
  add_test(NAME test_web_keys
    COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_web_keys.py
            $<TARGET_FILE:tallyd> $<TARGET_FILE:tally_cli> $<TARGET_FILE:tally_web>
            ${PROJECT_SOURCE_DIR})
  set_tests_properties(test_web_keys PROPERTIES LABELS integration TIMEOUT 180)
endif()

# The wall display in headless Chromium through Selenium (python3-selenium,
# chromium, chromium-driver); skipped (77) when they are missing.
if(TARGET tally_web AND TARGET tallyd AND TARGET tally_cli)
  add_test(NAME test_web_display
    COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_web_display.py
            $<TARGET_FILE:tallyd> $<TARGET_FILE:tally_cli> $<TARGET_FILE:tally_web>
            ${PROJECT_SOURCE_DIR})
  set_tests_properties(test_web_display PROPERTIES LABELS integration TIMEOUT 240
    SKIP_RETURN_CODE 77)
endif()

# The Prometheus alerting rules (systemd/tally.rules.yml): promtool's check,
# then its unit tests of each alert (77, skipped, without promtool).  That
# the rules read metrics /metrics serves is test_web's.
add_test(NAME test_alert_rules
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_alert_rules.py
          ${CMAKE_SOURCE_DIR})
set_tests_properties(test_alert_rules PROPERTIES LABELS integration TIMEOUT 120
  SKIP_RETURN_CODE 77)
