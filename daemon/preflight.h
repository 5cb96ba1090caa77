/*
 * preflight.h: everything a start of nextactd would trip over because of its
 * configuration, found before anything starts.
 *
 * `nextactd --check-config` runs it after loading the file, and `nextactd
 * run` (and demo) right after loading, so a configuration that cannot work
 * exits 78 (EX_CONFIG, which systemd's RestartPreventExitStatus= honours)
 * rather than 1 (restarted every RestartSec= for ever), and the check says
 * so before a deployment does.
 *
 * Checked:
 * - schema files: input.writer_schema (raw framing), every <id>.avsc in
 *   input.schema_dir (confluent framing, which must be a readable
 *   directory), output.schema (required when output.format is avro or
 *   confluent) exist, are readable regular files of at most
 *   NX_CODEC_SCHEMA_FILE_MAX bytes and parse as Avro records;
 * - the decoder's view of the input (nx_codec_new: the writer schema holds
 *   the mapped fields, type_map and topic_types agree) and the pipeline's
 *   feature and model settings (nx_pipeline_new): both are built and
 *   freed again, so they are checked by the code that runs them;
 * - state_dir is a writable directory, or does not exist and its parent is
 *   one; the user-id key in it (features/siphash.h), if present, is a
 *   regular file of mode 0600 and NX_SIPHASH_KEY_LEN bytes;
 *   <state_dir>/handover is a directory if it exists;
 * - checkpoint.dir (default <state_dir>/checkpoints) is a writable
 *   directory, or its nearest existing ancestor is;
 * - metrics.listen parses (nx_http_parse_listen) and its address is one of
 *   this host's (bound with port 0 for a moment);
 * - kafka.consumer and kafka.producer: files they name (ssl_*_location,
 *   sasl_kerberos_keytab) are readable, and librdkafka accepts each
 *   client's configuration as a whole (a client is created without brokers
 *   and destroyed: it connects nowhere).
 * Not checked: what the world decides at start, not the file: brokers
 * reachable, the metrics port free (a running daemon holds it while the
 * configuration of its successor is checked).
 *
 * Side effects: none. It reads and stats files; the codec, pipeline,
 * socket and librdkafka clients it makes (memory, threads, a descriptor)
 * are gone when it returns. It creates and writes nothing, and binds
 * nothing that stays. With SASL GSSAPI or OAUTHBEARER, plugins, an OpenSSL
 * engine or librdkafka's mock cluster the librdkafka trial is skipped:
 * creating such a client runs kinit, fetches tokens, loads code or listens.
 *
 * Errors: one line per problem, "CONF: KEY: FILE: reason" (errno text for
 * files), lines separated by '\n', no trailing newline; as many as fit in
 * errstr.
 */
#ifndef NX_PREFLIGHT_H
#define NX_PREFLIGHT_H

#include <stddef.h>

#include "config.h"

/* 0 when a start would not fail on cfg; -1 and the problems in errstr. */
int nx_preflight_check(const nx_config_t *cfg, char *errstr, size_t errstr_size);

#endif /* NX_PREFLIGHT_H */
