# install_tree: `cmake --install` of this build into a scratch DESTDIR with
# prefix /usr (as a package build does), then tests/integration/
# check_install.sh checks the tree: the file list, the unit's paths, the
# default configuration surviving a reinstall, the installed programs and a
# program built against the installed header and libraries (with the
# sanitizers when the build has them, or it would not load the library).
# It needs the whole build, which ctest runs after.
set(TALLY_INSTALL_TEST_CFLAGS "")
if(TALLY_SANITIZE)
  set(TALLY_INSTALL_TEST_CFLAGS "-fsanitize=address,undefined")
endif()
add_test(NAME install_tree
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/check_install.sh
          ${CMAKE_BINARY_DIR} ${CMAKE_CURRENT_BINARY_DIR}/install_tree
          ${CMAKE_COMMAND} ${CMAKE_C_COMPILER} "${TALLY_INSTALL_TEST_CFLAGS}")
set_tests_properties(install_tree PROPERTIES LABELS integration TIMEOUT 300)
