/*
 * siphash.h: keyed SipHash-2-4 of user ids and the store's key file.
 *
 * Users are keyed in the store by a 64-bit SipHash-2-4 (Aumasson and
 * Bernstein, 2012) of their id under a 128-bit secret, so the hashes are
 * stable across restarts (same key file) but cannot be predicted or flooded
 * by whoever controls the ids. The raw id is never kept.
 *
 * Guarantees: nx_siphash24 is pure, allocation-free and thread-safe; it
 * matches the reference vectors of the SipHash paper (tests/features).
 * nx_siphash_key_load is a start-up call (does I/O, may block).
 */
#ifndef NX_SIPHASH_H
#define NX_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

/* Bytes in a SipHash key. */
#define NX_SIPHASH_KEY_LEN 16

/* Name of the key file inside the state directory. */
#define NX_SIPHASH_KEY_FILE "user-hash.key"

/* SipHash-2-4 of data[0..len) under key (16 bytes, read as two
 * little-endian words as in the reference implementation). */
uint64_t nx_siphash24(const uint8_t key[NX_SIPHASH_KEY_LEN], const void *data, size_t len);

/* Loads the key from <state_dir>/user-hash.key, or, if that file does not
 * exist, creates it: 16 bytes from getrandom(2), written with
 * O_CREAT|O_EXCL and mode 0600, fsync'd, then the directory fsync'd. If
 * another process wins the create race, its key is read instead.
 * An existing file must be exactly 16 bytes and not readable by group or
 * others. *created (may be NULL) is set to 1 when a new key was made.
 * Returns 0, or -1 with a message in errstr. */
int nx_siphash_key_load(const char *state_dir, uint8_t key[NX_SIPHASH_KEY_LEN], int *created,
                        char *errstr, size_t errstr_size);

#endif /* NX_SIPHASH_H */
