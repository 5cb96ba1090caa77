# Install rules (included from the root CMakeLists.txt): the binary, the
# systemd unit, the configuration and its schemas, in FHS places.
#
#   <prefix>/bin/nextactd
#   <prefix>/lib/systemd/system/nextactd.service   (NX_SYSTEMD_UNITDIR)
#   <NX_CONFDIR>/nextactd.conf               (default /etc/nextactd)
#   <NX_CONFDIR>/schemas/*.avsc
#   <prefix>/share/doc/nextact/README.md
# State lives in /var/lib/nextactd, made by systemd (StateDirectory=).
# The unit names the configured prefix's binary: packagers configure with
# -DCMAKE_INSTALL_PREFIX=/usr and install with DESTDIR as usual.
include(GNUInstallDirs)
set(NX_CONFDIR "/etc/nextactd" CACHE PATH "Where nextactd.conf and schemas/ are installed")
set(NX_SYSTEMD_UNITDIR "lib/systemd/system"
    CACHE PATH "Where nextactd.service is installed (relative: under the prefix)")

set(NX_BINDIR "${CMAKE_INSTALL_FULL_BINDIR}")
set(NX_DOCDIR "${CMAKE_INSTALL_FULL_DOCDIR}")
configure_file(${PROJECT_SOURCE_DIR}/systemd/nextactd.service.in
               ${PROJECT_BINARY_DIR}/systemd/nextactd.service @ONLY)

install(TARGETS nextactd RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${PROJECT_BINARY_DIR}/systemd/nextactd.service DESTINATION ${NX_SYSTEMD_UNITDIR})
# The configuration as shipped (mode 0644; the package manager keeps an
# edited one on upgrade). The DynamicUser reads it through
# ConfigurationDirectory=.
install(FILES ${PROJECT_SOURCE_DIR}/conf/nextactd.conf DESTINATION ${NX_CONFDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/conf/schemas/ DESTINATION ${NX_CONFDIR}/schemas
        FILES_MATCHING PATTERN "*.avsc")
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
