/*
 * checkpoint.h: crash-safe model checkpoints with caller-defined sections.
 *
 * A checkpoint file is, in host byte order (little-endian on every target we
 * build for; the header records the order and a mismatch is refused):
 *   header   magic "NXCKPT\r\n" (8) | format version u32 | byte-order tag u32
 *            | feature-schema hash u64 | file length u64 | reserved u32
 *            | CRC32C of the preceding 36 bytes u32
 *   sections tag 'S' | name length u8 | name | chunks (u32 length, bytes)...
 *            | u32 0
 *   trailer  tag 'E' | CRC32C of every byte after the header up to here, u32
 * The header is rewritten at commit with the final length, so a short file
 * is told apart from a damaged one.
 * The model is one section ("mlp.v": a version, dimensions, step,
 * down-sampling RNG, weights, optimizer moments; the unversioned "mlp" of
 * older checkpoints is still read); the daemon adds its own (normaliser,
 * feature store, offsets), each versioned, by streaming bytes through
 * nx_checkpoint_write, so a large section never has to exist in one buffer. Chunks let a section be
 * written without knowing its length in advance.
 *
 * Writing goes to "<path>.tmp", which nx_checkpoint_commit fsyncs, renames
 * over path and follows with an fsync of the directory: a crash leaves
 * either the old or the new checkpoint, never a torn one.
 *
 * Loading (nx_checkpoint_open) reads the whole file once and refuses, with a
 * message naming the reason: a file that is not a checkpoint (magic), a
 * damaged header (header CRC), another format version, another byte order,
 * a truncated file (ends before its trailer), corruption anywhere (CRC32C
 * mismatch) and a different feature-schema hash. A round trip restores the
 * model bit-identically.
 *
 * CRC32C (Castagnoli, the polynomial of iSCSI and ext4) is computed in
 * software, slicing-by-8 tables built once on first use.
 *
 * Ownership: the writer and reader own their file descriptors; commit,
 * abort and close free them. Threads: one writer or reader per thread.
 */
#ifndef NX_CHECKPOINT_H
#define NX_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "mlp.h"

#define NX_CHECKPOINT_VERSION      1
#define NX_CHECKPOINT_MAX_NAME     64 /* bytes in a section name */
#define NX_CHECKPOINT_MAX_SECTIONS 64

typedef struct nx_checkpoint_writer nx_checkpoint_writer_t;
typedef struct nx_checkpoint_reader nx_checkpoint_reader_t;

/* CRC32C of len bytes continuing from crc (0 to start). */
uint32_t nx_crc32c(uint32_t crc, const void *data, size_t len);

/* Starts writing a checkpoint for path (into path + ".tmp"). NULL with the
 * reason in errstr. Finish with nx_checkpoint_commit or nx_checkpoint_abort. */
nx_checkpoint_writer_t *nx_checkpoint_begin(const char *path, uint64_t schema_hash, char *errstr,
                                            size_t errstr_size);

/* Opens a named section (1..NX_CHECKPOINT_MAX_NAME bytes, unique); bytes
 * written until nx_checkpoint_section_end belong to it. 0 or -1. */
int nx_checkpoint_section_begin(nx_checkpoint_writer_t *w, const char *name);

/* Appends len bytes to the open section. Signature of a generic write
 * callback (ctx = the writer), so serialisers can take it as one. 0 or -1;
 * errors are sticky and reported again by commit. */
int nx_checkpoint_write(void *w, const void *data, size_t len);

int nx_checkpoint_section_end(nx_checkpoint_writer_t *w);

/* Writes the "mlp.v" section: version, dimensions, step, RNG, weights,
 * moments. */
int nx_checkpoint_put_mlp(nx_checkpoint_writer_t *w, nx_mlp_t *mlp);

/* Writes the trailer, fsyncs, renames over path, fsyncs the directory and
 * frees w (also on error, when the temporary file is removed). 0 or -1. */
int nx_checkpoint_commit(nx_checkpoint_writer_t *w, char *errstr, size_t errstr_size);

/* Why the writer failed (the first error, with its errno text), or NULL if
 * it has not. Valid until commit or abort. */
const char *nx_checkpoint_error(const nx_checkpoint_writer_t *w);

/* Removes the temporary file and frees w. NULL does nothing. */
void nx_checkpoint_abort(nx_checkpoint_writer_t *w);

/* Opens and verifies a checkpoint (see above) written for schema_hash.
 * NULL with the reason in errstr. Caller frees with nx_checkpoint_close. */
nx_checkpoint_reader_t *nx_checkpoint_open(const char *path, uint64_t schema_hash, char *errstr,
                                           size_t errstr_size);

/* Positions the reader at the start of section name: 0, or -1 if absent. */
int nx_checkpoint_section_open(nx_checkpoint_reader_t *r, const char *name);

/* Reads exactly len bytes of the open section into buf. 0, or -1 if the
 * section has fewer bytes left or on an I/O error. */
int nx_checkpoint_read(void *r, void *buf, size_t len);

/* Bytes of the open section not yet read. */
uint64_t nx_checkpoint_section_left(const nx_checkpoint_reader_t *r);

/* Loads the "mlp.v" section (or an older checkpoint's "mlp") into mlp,
 * which must have the same dimensions (n_in, hidden sizes, classes, head)
 * and optimizer; hyperparameters such as
 * the learning rate come from mlp's own params. On error mlp is unchanged
 * and errstr says why. 0 or -1. */
int nx_checkpoint_get_mlp(nx_checkpoint_reader_t *r, nx_mlp_t *mlp, char *errstr,
                          size_t errstr_size);

void nx_checkpoint_close(nx_checkpoint_reader_t *r);

#endif /* NX_CHECKPOINT_H */
