# Ingest, decoding half: Avro codec, prediction encoder, replay file I/O.
# Included from daemon/CMakeLists.txt; appends to NX_DAEMON_SOURCES.
list(APPEND NX_DAEMON_SOURCES
  codec.c
  replay_io.c
  predenc.c
)
# replay_io.c reads and writes deflate- and snappy-coded Avro container
# blocks. nx_daemon is defined after this file is included, so the link is
# deferred to the end of the directory.
pkg_check_modules(ZLIB REQUIRED IMPORTED_TARGET zlib)
pkg_check_modules(SNAPPY REQUIRED IMPORTED_TARGET snappy)
cmake_language(DEFER CALL target_link_libraries nx_daemon PUBLIC PkgConfig::ZLIB PkgConfig::SNAPPY)
