# The security building blocks: key files and the keyring, the ZAP handler,
# the per-township rate limit.  test_keys also drives `tally keygen`
# (client/cli/cli_keygen.c) and reads its files back with keys.c.
tally_unit_test(test_keys
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_keys.c ${CMAKE_SOURCE_DIR}/client/cli/cli_keygen.c
  LIBS tallydcore tallyclicore)
tally_unit_test(test_zap SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_zap.c LIBS tallydcore)
tally_unit_test(test_ratelimit SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_ratelimit.c
  LIBS tallydcore)
