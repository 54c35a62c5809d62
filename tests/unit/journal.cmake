tally_unit_test(test_journal SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_journal.c LIBS tallydcore)
tally_unit_test(test_journal_replay SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_journal_replay.c LIBS tallydcore)
tally_unit_test(test_backup SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_backup.c LIBS tallydcore)
tally_unit_test(test_backup_fetch SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_backup_fetch.c LIBS tallydcore)
