# libtally (client/lib/) and the tally command (client/cli/): one cmocka
# executable per concern.
set(TALLY_CLIENT_TESTS csv text parse spool pub expiry sub cli townships backup)
foreach(t IN LISTS TALLY_CLIENT_TESTS)
  if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_client_${t}.c)
    tally_unit_test(test_client_${t}
      SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_client_${t}.c
      LIBS tallyclicore tally_static)
  endif()
endforeach()
# test_client_spool drives the spool itself (client/lib/spool.h, fsutil.h),
# which libtally does not make public: it alone gets the private headers.
if(TARGET test_client_spool)
  target_include_directories(test_client_spool PRIVATE ${CMAKE_SOURCE_DIR}/client/lib)
endif()
if(TARGET test_client_csv)
  target_compile_definitions(test_client_csv PRIVATE
    TALLY_SHARED_DATA="${CMAKE_SOURCE_DIR}/client/demo")
endif()
if(TARGET test_client_cli)
  target_compile_definitions(test_client_cli PRIVATE
    TALLY_CLI="$<TARGET_FILE:tally_cli>"
    TALLY_SHARED_DATA="${CMAKE_SOURCE_DIR}/client/demo")
  add_dependencies(test_client_cli tally_cli)
endif()
# test_client_backup drives tally_backup_req and the `tally backup` command
# that prints its answer against one scripted daemon.
if(TARGET test_client_backup)
  target_compile_definitions(test_client_backup PRIVATE TALLY_CLI="$<TARGET_FILE:tally_cli>")
  add_dependencies(test_client_backup tally_cli)
endif()
