# install-tallyd.cmake - run by `cmake --install` (install(SCRIPT) in
# systemd/CMakeLists.txt) to install what depends on the prefix: the unit,
# whose ExecStart= names the installed tallyd and its configuration file,
# and that configuration.
#
# Input: CMAKE_INSTALL_PREFIX (the prefix of this installation, which
# `cmake --install --prefix` may have changed since configuring), and the
# TALLYD_* variables set just before by install(CODE).  file(INSTALL) puts
# $DESTDIR in front of every destination and records the files in
# install_manifest.txt.

cmake_path(SET prefix NORMALIZE "${CMAKE_INSTALL_PREFIX}")
string(REGEX REPLACE "(.)/+$" "\\1" prefix "${prefix}")

# The full path of a configured directory, by GNUInstallDirs' rules: an
# absolute one stays; etc goes to /etc for the prefixes / and /usr and to
# /etc/opt/PKG for /opt/PKG; the rest goes under the prefix.
function(tallyd_full_dir out dir sysconf)
  if(IS_ABSOLUTE "${dir}")
    set(full "${dir}")
  elseif(sysconf AND (prefix STREQUAL "/" OR prefix STREQUAL "/usr"))
    set(full "/${dir}")
  elseif(sysconf AND prefix MATCHES "^/opt/(.+)$")
    set(full "/${dir}/opt/${CMAKE_MATCH_1}")
  elseif(prefix STREQUAL "/")
    set(full "/${dir}")
  else()
    set(full "${prefix}/${dir}")
  endif()
  cmake_path(SET full NORMALIZE "${full}")
  set(${out} "${full}" PARENT_SCOPE)
endfunction()

tallyd_full_dir(sbindir "${TALLYD_SBINDIR}" FALSE)
tallyd_full_dir(sysconfdir "${TALLYD_SYSCONFDIR}" TRUE)
if(TALLYD_UNIT_DIR)
  tallyd_full_dir(unitdir "${TALLYD_UNIT_DIR}" FALSE)
else()
  tallyd_full_dir(unitdir "lib/systemd/system" FALSE)
endif()

# The unit, with the names tallyd.service.in expects.
set(CMAKE_INSTALL_FULL_SBINDIR "${sbindir}")
set(TALLYD_CONFIG_FILE "${sysconfdir}/tallyd/tallyd.conf")
file(READ "${TALLYD_UNIT_TEMPLATE}" unit)
string(CONFIGURE "${unit}" unit @ONLY)
# One staging file per destination, so that two installations of one build
# (a test next to a packaging run) do not write each other's unit.
string(MD5 staging "$ENV{DESTDIR}|${prefix}|${unitdir}")
set(staging "${TALLYD_STAGING_DIR}/${staging}")
file(WRITE "${staging}/tallyd.service" "${unit}")
file(INSTALL DESTINATION "${unitdir}" TYPE FILE
  PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
  FILES "${staging}/tallyd.service")

# The example is ours and always current; tallyd.conf belongs to the site
# once installed, so a reinstall or upgrade never overwrites it (compare it
# with the new example instead).
file(INSTALL DESTINATION "${sysconfdir}/tallyd" TYPE FILE
  PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
  FILES "${TALLYD_CONFIG_EXAMPLE}")
if(EXISTS "$ENV{DESTDIR}${sysconfdir}/tallyd/tallyd.conf")
  message(STATUS "Keeping: $ENV{DESTDIR}${sysconfdir}/tallyd/tallyd.conf (the site's own; see tallyd.conf.example)")
else()
  file(INSTALL DESTINATION "${sysconfdir}/tallyd" TYPE FILE
    PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
    FILES "${TALLYD_CONFIG_EXAMPLE}" RENAME tallyd.conf)
endif()
