# The daemon's parts, each driven through its interface with fakes
# (parts_test_util.h): no sockets, no threads.
foreach(t ingest request request_backup publish snapshot reload_prepare recover endpoints
  subscriptions history history_disk recall memhint)
  if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_${t}.c)
    tally_unit_test(test_${t} SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_${t}.c LIBS tallydcore)
  endif()
endforeach()
