# tallycommon (proto/): the helpers the daemon, the codec and the client
# share, one cmocka executable per module.
foreach(m atomic_file text utf8 suggest vec calperiod b2sums)
  tally_unit_test(test_${m} SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_${m}.c LIBS tallycommon)
endforeach()
