# Ingest, decoding half: Avro codec, prediction encoder, replay file I/O.
# Included from daemon/CMakeLists.txt; appends to NX_DAEMON_SOURCES.
list(APPEND NX_DAEMON_SOURCES
  codec.c
)
