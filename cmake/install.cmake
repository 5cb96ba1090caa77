# Install rules (included from the root CMakeLists.txt): the binary, the
# systemd unit, the configuration and its schemas, the manual pages and the
# documentation, in FHS places under the install prefix:
#
#   <prefix>/bin/nextactd
#   <prefix>/lib/systemd/system/nextactd.service   (NX_SYSTEMD_UNITDIR)
#   <prefix>/etc/nextactd/nextactd.conf            (/etc/nextactd when the prefix is /usr)
#   <prefix>/etc/nextactd/schemas/*.avsc
#   <prefix>/share/man/man8/nextactd.8.gz, man5/nextactd.conf.5.gz
#   <prefix>/share/doc/nextactd/README.md, copyright, changelog.gz
#
# `cmake --install BUILD --prefix P` puts everything under P, and the unit
# installed there runs P's binary on P's configuration: the unit is written
# at install time from the prefix in force then. Packagers configure with
# -DCMAKE_INSTALL_PREFIX=/usr (the configuration then goes to /etc) and use
# DESTDIR, or `cpack -G DEB` (cmake/package.cmake). State lives in
# /var/lib/nextactd, made by systemd (StateDirectory=).
include(GNUInstallDirs)
set(NX_SYSTEMD_UNITDIR "lib/systemd/system"
    CACHE STRING "Where nextactd.service is installed, under the prefix")
# The documentation directory is named after the package, as Debian wants.
set(NX_DOCDIR "${CMAKE_INSTALL_DATAROOTDIR}/doc/nextactd")

# The configuration directory: under the prefix, except for /usr, whose
# configuration lives in /etc (FHS). Decided at install time (below), as the
# prefix may be given then (`cmake --install --prefix`, cpack); for the unit
# of the build tree (tests check it) the configured prefix decides.
set(NX_BINDIR "${CMAKE_INSTALL_FULL_BINDIR}")
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(NX_CONFDIR "/etc/nextactd")
else()
  set(NX_CONFDIR "${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_SYSCONFDIR}/nextactd")
endif()
set(NX_DOCDIR_FULL "${CMAKE_INSTALL_PREFIX}/${NX_DOCDIR}")
configure_file(${PROJECT_SOURCE_DIR}/systemd/nextactd.service.in
               ${PROJECT_BINARY_DIR}/systemd/nextactd.service @ONLY)

# The manual pages: nextactd.conf(5) is generated from the configuration
# table by the built binary, so the page and the daemon cannot disagree.
find_program(NX_GZIP gzip REQUIRED)
set(NX_MAN ${PROJECT_BINARY_DIR}/man)
# Laid out as a man directory (man5/, man8/), so MANPATH=<build>/man finds
# them (systemd-analyze verify follows the unit's Documentation=).
add_custom_command(
  OUTPUT ${NX_MAN}/man5/nextactd.conf.5.gz ${NX_MAN}/man8/nextactd.8.gz ${NX_MAN}/changelog.gz
  COMMAND ${CMAKE_COMMAND} -E make_directory ${NX_MAN}/man5 ${NX_MAN}/man8
  COMMAND $<TARGET_FILE:nextactd> --man-config > ${NX_MAN}/man5/nextactd.conf.5
  COMMAND ${NX_GZIP} -9nf ${NX_MAN}/man5/nextactd.conf.5
  COMMAND ${CMAKE_COMMAND} -E copy ${PROJECT_SOURCE_DIR}/daemon/nextactd.8 ${NX_MAN}/man8/nextactd.8
  COMMAND ${NX_GZIP} -9nf ${NX_MAN}/man8/nextactd.8
  COMMAND ${CMAKE_COMMAND} -E copy ${PROJECT_SOURCE_DIR}/cmake/debian/changelog ${NX_MAN}/changelog
  COMMAND ${NX_GZIP} -9nf ${NX_MAN}/changelog
  DEPENDS nextactd ${PROJECT_SOURCE_DIR}/daemon/nextactd.8 ${PROJECT_SOURCE_DIR}/cmake/debian/changelog
  COMMENT "Manual pages")
add_custom_target(nx_man ALL DEPENDS ${NX_MAN}/man5/nextactd.conf.5.gz ${NX_MAN}/man8/nextactd.8.gz
                                     ${NX_MAN}/changelog.gz)

install(TARGETS nextactd RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# At install time, from the prefix in force then: the configuration
# directory, and the unit naming that prefix's binary and configuration.
# The configuration as shipped (mode 0644; the package marks it a conffile,
# so an edited one is kept on upgrade); the DynamicUser reads it through
# ConfigurationDirectory=.
install(CODE "
  if(\"\${CMAKE_INSTALL_PREFIX}\" STREQUAL \"/usr\")
    set(NX_CONFDIR \"/etc/nextactd\")
  else()
    set(NX_CONFDIR \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_SYSCONFDIR}/nextactd\")
  endif()
  set(NX_BINDIR \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}\")
  set(NX_DOCDIR_FULL \"\${CMAKE_INSTALL_PREFIX}/${NX_DOCDIR}\")
  configure_file(\"${PROJECT_SOURCE_DIR}/systemd/nextactd.service.in\"
                 \"${PROJECT_BINARY_DIR}/systemd/install/nextactd.service\" @ONLY)
  file(INSTALL DESTINATION \"\${NX_CONFDIR}\" TYPE FILE
       FILES \"${PROJECT_SOURCE_DIR}/conf/nextactd.conf\")
  file(INSTALL DESTINATION \"\${NX_CONFDIR}\" TYPE DIRECTORY
       FILES \"${PROJECT_SOURCE_DIR}/conf/schemas\" FILES_MATCHING PATTERN \"*.avsc\")
")
install(FILES ${PROJECT_BINARY_DIR}/systemd/install/nextactd.service
        DESTINATION ${NX_SYSTEMD_UNITDIR})
install(FILES ${NX_MAN}/man8/nextactd.8.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
install(FILES ${NX_MAN}/man5/nextactd.conf.5.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man5)
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/cmake/debian/copyright
              ${NX_MAN}/changelog.gz
        DESTINATION ${NX_DOCDIR})
