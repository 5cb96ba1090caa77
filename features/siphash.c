/* siphash.c: SipHash-2-4 and the key file (see siphash.h). */
#include "siphash.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

static inline uint64_t rotl64(uint64_t x, int b) {
    return (x << b) | (x >> (64 - b));
}

/* Little-endian 64-bit load: one move on little-endian hosts (a byte loop
 * would be a fifth of the hash's cost). */
static inline uint64_t load_le64(const uint8_t *p) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
#else
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
#endif
}

/* One SipRound: the ARX network of the paper, section 2. */
#define NX_SIPROUND                                                                                \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = rotl64(v1, 13);                                                                       \
        v1 ^= v0;                                                                                  \
        v0 = rotl64(v0, 32);                                                                       \
        v2 += v3;                                                                                  \
        v3 = rotl64(v3, 16);                                                                       \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = rotl64(v3, 21);                                                                       \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = rotl64(v1, 17);                                                                       \
        v1 ^= v2;                                                                                  \
        v2 = rotl64(v2, 32);                                                                       \
    } while (0)

uint64_t nx_siphash24(const uint8_t key[NX_SIPHASH_KEY_LEN], const void *data, size_t len) {
    const uint8_t *in = data;
    uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
    /* Initialisation constants: "somepseudorandomlygeneratedbytes". */
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL;
    uint64_t v1 = k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL;
    uint64_t v3 = k1 ^ 0x7465646279746573ULL;
    size_t full = len & ~(size_t)7;
    for (size_t i = 0; i < full; i += 8) {
        uint64_t m = load_le64(in + i);
        v3 ^= m;
        NX_SIPROUND; /* c = 2 compression rounds */
        NX_SIPROUND;
        v0 ^= m;
    }
    /* Last block: remaining bytes, length mod 256 in the top byte. */
    uint64_t b = (uint64_t)len << 56;
    const uint8_t *t = in + full;
    switch (len & 7) { /* falls through: byte i goes to bits 8i.. */
    case 7:
        b |= (uint64_t)t[6] << 48; /* fall through */
    case 6:
        b |= (uint64_t)t[5] << 40; /* fall through */
    case 5:
        b |= (uint64_t)t[4] << 32; /* fall through */
    case 4:
        b |= (uint64_t)t[3] << 24; /* fall through */
    case 3:
        b |= (uint64_t)t[2] << 16; /* fall through */
    case 2:
        b |= (uint64_t)t[1] << 8; /* fall through */
    case 1:
        b |= (uint64_t)t[0];
        break;
    default:
        break;
    }
    v3 ^= b;
    NX_SIPROUND;
    NX_SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;  /* finalisation marker of the paper */
    NX_SIPROUND; /* d = 4 finalisation rounds */
    NX_SIPROUND;
    NX_SIPROUND;
    NX_SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static int read_key(int fd, const char *path, uint8_t key[NX_SIPHASH_KEY_LEN], char *errstr,
                    size_t errstr_size) {
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (st.st_mode & 077) {
        snprintf(errstr, errstr_size, "%s: mode %03o is readable by others; want 0600", path,
                 (unsigned)(st.st_mode & 0777));
        return -1;
    }
    if (st.st_size != NX_SIPHASH_KEY_LEN) {
        snprintf(errstr, errstr_size, "%s: %lld bytes, want %d", path, (long long)st.st_size,
                 NX_SIPHASH_KEY_LEN);
        return -1;
    }
    size_t got = 0;
    while (got < NX_SIPHASH_KEY_LEN) {
        ssize_t r = read(fd, key + got, NX_SIPHASH_KEY_LEN - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            snprintf(errstr, errstr_size, "%s: read: %s", path, r < 0 ? strerror(errno) : "short");
            return -1;
        }
        got += (size_t)r;
    }
    return 0;
}

int nx_siphash_key_load(const char *state_dir, uint8_t key[NX_SIPHASH_KEY_LEN], int *created,
                        char *errstr, size_t errstr_size) {
    char path[4096];
    int fd = -1, dfd = -1, rc = -1;
    if (created)
        *created = 0;
    if (snprintf(path, sizeof path, "%s/%s", state_dir, NX_SIPHASH_KEY_FILE) >= (int)sizeof path) {
        snprintf(errstr, errstr_size, "state directory path too long");
        return -1;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        rc = read_key(fd, path, key, errstr, errstr_size);
        goto out;
    }
    if (errno != ENOENT) {
        snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
        goto out;
    }
    uint8_t fresh[NX_SIPHASH_KEY_LEN];
    size_t got = 0;
    while (got < sizeof fresh) {
        ssize_t r = getrandom(fresh + got, sizeof fresh - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(errstr, errstr_size, "getrandom: %s", strerror(errno));
            goto out;
        }
        got += (size_t)r;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST) { /* lost a race: use the winner's key */
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0)
            rc = read_key(fd, path, key, errstr, errstr_size);
        else
            snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (fd < 0) {
        snprintf(errstr, errstr_size, "%s: create: %s", path, strerror(errno));
        goto out;
    }
    if (write(fd, fresh, sizeof fresh) != (ssize_t)sizeof fresh || fsync(fd) != 0) {
        snprintf(errstr, errstr_size, "%s: write: %s", path, strerror(errno));
        unlink(path);
        goto out;
    }
    dfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) {
        snprintf(errstr, errstr_size, "%s: fsync: %s", state_dir, strerror(errno));
        goto out;
    }
    memcpy(key, fresh, sizeof fresh);
    if (created)
        *created = 1;
    rc = 0;
out:
    if (dfd >= 0)
        close(dfd);
    if (fd >= 0)
        close(fd);
    return rc;
}
