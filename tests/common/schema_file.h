/*
 * schema_file.h: an Avro schema read from a .avsc file, for tests that
 * decode the daemon's output with Avro C as the reference reader.
 */
#ifndef NX_SCHEMA_FILE_H
#define NX_SCHEMA_FILE_H

#include <avro.h>

/* Parses the schema in path (at most 64 KiB) into *schema; the caller
 * releases it with avro_schema_decref. 0, or -1 with a message on stderr. */
int nx_schema_file(const char *path, avro_schema_t *schema);

#endif /* NX_SCHEMA_FILE_H */
