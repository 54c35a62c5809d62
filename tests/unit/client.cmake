# libtally (client/lib/) and the tally command (client/cli/): one cmocka
# executable per concern.
set(TALLY_CLIENT_TESTS csv text parse spool pub expiry sub cli townships backup
  backup_copy probe period_split span)
foreach(t IN LISTS TALLY_CLIENT_TESTS)
  if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_client_${t}.c)
    tally_unit_test(test_client_${t}
      SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_client_${t}.c
      LIBS tallyclicore tally_static)
  endif()
endforeach()
# test_client_spool drives the spool itself (client/lib/spool.h, fsutil.h)
# and test_client_probe the connection probe (probe.h), which libtally does
# not make public: they alone get the private headers.
foreach(t IN ITEMS test_client_spool test_client_probe)
  if(TARGET ${t})
    target_include_directories(${t} PRIVATE ${CMAKE_SOURCE_DIR}/client/lib)
  endif()
endforeach()
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
# test_client_backup (tally_backup_req, tally_backup_list_req) and
# test_client_backup_copy (tally_backup_fetch_req, --copy-to, --verify) drive
# libtally and the `tally backup` command that prints its answers against
# one scripted daemon (unit/client_backup_fake.h).
foreach(t IN ITEMS test_client_backup test_client_backup_copy)
  if(TARGET ${t})
    target_compile_definitions(${t} PRIVATE TALLY_CLI="$<TARGET_FILE:tally_cli>")
    add_dependencies(${t} tally_cli)
  endif()
endforeach()
