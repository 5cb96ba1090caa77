/*
 * stream.h: byte-stream callbacks for saving and restoring state.
 *
 * The store and the normaliser write their state through a caller's write
 * callback and read it back through a read callback, so the caller chooses
 * the medium (checkpoint file, hand-over file, memory buffer).
 * Both callbacks move exactly len bytes and return 0, or -1 on error (a short
 * read is an error). Numbers in streams are little-endian host words: a
 * stream is read back on the same architecture (x86-64/aarch64).
 */
#ifndef NX_STREAM_H
#define NX_STREAM_H

#include <stddef.h>

typedef int (*nx_stream_write_fn)(void *opaque, const void *buf, size_t len);
typedef int (*nx_stream_read_fn)(void *opaque, void *buf, size_t len);

#endif /* NX_STREAM_H */
