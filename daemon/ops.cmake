# Operations: sd_notify, checkpoint directory, metrics endpoint (issue 7),
# the configuration checks before a start (preflight).
# Included from daemon/CMakeLists.txt; appends to NX_DAEMON_SOURCES.
# libsystemd and libmicrohttpd are required here: notify.c and http.c use
# them unconditionally (the root CMakeLists.txt finds them optionally and
# daemon/CMakeLists.txt links them when found).
pkg_check_modules(SYSTEMD REQUIRED IMPORTED_TARGET libsystemd)
pkg_check_modules(MHD REQUIRED IMPORTED_TARGET libmicrohttpd)
find_package(Threads REQUIRED)
list(APPEND NX_DAEMON_SOURCES
  ${CMAKE_CURRENT_SOURCE_DIR}/notify.c
  ${CMAKE_CURRENT_SOURCE_DIR}/ckpt.c
  ${CMAKE_CURRENT_SOURCE_DIR}/http.c
  ${CMAKE_CURRENT_SOURCE_DIR}/preflight.c
)
cmake_language(DEFER CALL target_link_libraries nx_daemon PUBLIC Threads::Threads)
