/* checkpoint.c: see checkpoint.h. */
#include "checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>
#include <sys/stat.h>
#include <unistd.h>

static const char NX_CKPT_MAGIC[8] = {'N', 'X', 'C', 'K', 'P', 'T', '\r', '\n'};
#define NX_CKPT_ORDER       0x01020304u /* reads back as 0x04030201 on the other byte order */
#define NX_CKPT_HEADER_SIZE 40
#define NX_CKPT_CHUNK       65536 /* bytes buffered per chunk: large writes, small memory */
#define NX_CKPT_TAG_SECTION 'S'
#define NX_CKPT_TAG_END     'E'

/* ---- CRC32C, slicing-by-8 ---- */

#define NX_CRC32C_POLY 0x82f63b78u /* Castagnoli polynomial, reflected */

static uint32_t crc_table[8][256];
static once_flag crc_once = ONCE_FLAG_INIT;

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ NX_CRC32C_POLY : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

uint32_t nx_crc32c(uint32_t crc, const void *data, size_t len) {
    call_once(&crc_once, crc_init);
    const unsigned char *p = data;
    crc = ~crc;
    while (len >= 8) {
        /* byte-wise loads: no alignment or byte-order assumption */
        const uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                                   (uint32_t)p[3] << 24);
        crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
              crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^ crc_table[3][p[4]] ^
              crc_table[2][p[5]] ^ crc_table[1][p[6]] ^ crc_table[0][p[7]];
        p += 8;
        len -= 8;
    }
    while (len--)
        crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xff];
    return ~crc;
}

/* ---- writer ---- */

struct nx_checkpoint_writer {
    int fd;
    int failed; /* sticky: an error happened, commit refuses */
    int in_section;
    uint32_t crc;     /* of every byte after the header written so far */
    uint64_t written; /* bytes in the file */
    uint64_t schema;
    size_t used;   /* bytes in buf of the current chunk */
    char *path;    /* final path */
    char *tmp;     /* path + ".tmp" */
    char err[160]; /* first error */
    unsigned char buf[NX_CKPT_CHUNK];
};

static int w_fail(nx_checkpoint_writer_t *w, const char *what) {
    if (!w->failed)
        snprintf(w->err, sizeof(w->err), "%s: %s: %s", w->tmp, what, strerror(errno));
    w->failed = 1;
    return -1;
}

/* Raw bytes to the file (CRC'd). */
static int w_raw(nx_checkpoint_writer_t *w, const void *data, size_t len) {
    if (w->failed)
        return -1;
    w->crc = nx_crc32c(w->crc, data, len);
    w->written += len;
    const char *p = data;
    while (len > 0) {
        const ssize_t n = write(w->fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return w_fail(w, "write");
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int w_flush_chunk(nx_checkpoint_writer_t *w) {
    if (w->used == 0)
        return 0;
    const uint32_t len = (uint32_t)w->used;
    w->used = 0;
    if (w_raw(w, &len, sizeof(len)) != 0)
        return -1;
    return w_raw(w, w->buf, len);
}

/* magic | version | byte order | schema hash | file length u64 | reserved
 * u32 | CRC32C of the preceding 36 bytes */
static void header_encode(unsigned char *h, uint64_t schema_hash, uint64_t length) {
    const uint32_t version = NX_CHECKPOINT_VERSION, order = NX_CKPT_ORDER, reserved = 0;
    memcpy(h, NX_CKPT_MAGIC, 8);
    memcpy(h + 8, &version, 4);
    memcpy(h + 12, &order, 4);
    memcpy(h + 16, &schema_hash, 8);
    memcpy(h + 24, &length, 8);
    memcpy(h + 32, &reserved, 4);
    const uint32_t hcrc = nx_crc32c(0, h, 36);
    memcpy(h + 36, &hcrc, 4);
}

nx_checkpoint_writer_t *nx_checkpoint_begin(const char *path, uint64_t schema_hash, char *errstr,
                                            size_t errstr_size) {
    nx_checkpoint_writer_t *w = calloc(1, sizeof(*w));
    if (!w) {
        snprintf(errstr, errstr_size, "checkpoint: out of memory");
        return NULL;
    }
    w->fd = -1;
    w->path = strdup(path);
    w->tmp = malloc(strlen(path) + 5);
    if (!w->path || !w->tmp) {
        snprintf(errstr, errstr_size, "checkpoint: out of memory");
        goto err;
    }
    sprintf(w->tmp, "%s.tmp", path);
    w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (w->fd < 0) {
        snprintf(errstr, errstr_size, "%s: %s", w->tmp, strerror(errno));
        goto err;
    }
    /* The header is written again by commit, with the file's length. */
    unsigned char h[NX_CKPT_HEADER_SIZE];
    w->schema = schema_hash;
    header_encode(h, schema_hash, 0);
    if (w_raw(w, h, sizeof(h)) != 0) {
        snprintf(errstr, errstr_size, "%s", w->err);
        goto err;
    }
    w->crc = 0; /* the body CRC starts after the header */
    return w;
err:
    nx_checkpoint_abort(w);
    return NULL;
}

int nx_checkpoint_section_begin(nx_checkpoint_writer_t *w, const char *name) {
    const size_t len = strlen(name);
    if (w->in_section || len == 0 || len > NX_CHECKPOINT_MAX_NAME) {
        if (!w->failed)
            snprintf(w->err, sizeof(w->err), "section \"%.64s\": bad name or nested section", name);
        w->failed = 1;
        return -1;
    }
    const unsigned char head[2] = {NX_CKPT_TAG_SECTION, (unsigned char)len};
    w->in_section = 1;
    if (w_raw(w, head, 2) != 0)
        return -1;
    return w_raw(w, name, len);
}

int nx_checkpoint_write(void *ctx, const void *data, size_t len) {
    nx_checkpoint_writer_t *w = ctx;
    if (w->failed)
        return -1;
    if (!w->in_section) {
        snprintf(w->err, sizeof(w->err), "write outside a section");
        w->failed = 1;
        return -1;
    }
    const unsigned char *p = data;
    while (len > 0) {
        size_t n = NX_CKPT_CHUNK - w->used;
        n = n < len ? n : len;
        memcpy(w->buf + w->used, p, n);
        w->used += n;
        p += n;
        len -= n;
        if (w->used == NX_CKPT_CHUNK && w_flush_chunk(w) != 0)
            return -1;
    }
    return 0;
}

int nx_checkpoint_section_end(nx_checkpoint_writer_t *w) {
    if (!w->in_section)
        return -1;
    w->in_section = 0;
    const uint32_t zero = 0;
    if (w_flush_chunk(w) != 0)
        return -1;
    return w_raw(w, &zero, sizeof(zero));
}

/* fsync of the directory holding path, so the rename itself is durable. */
static int fsync_dir(const char *path) {
    char *copy = strdup(path);
    if (!copy)
        return -1;
    const int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd < 0)
        return -1;
    const int rc = fsync(fd);
    close(fd);
    return rc;
}

int nx_checkpoint_commit(nx_checkpoint_writer_t *w, char *errstr, size_t errstr_size) {
    if (w->in_section)
        nx_checkpoint_section_end(w);
    const unsigned char tag = NX_CKPT_TAG_END;
    w_raw(w, &tag, 1);
    const uint32_t crc = w->crc;
    w_raw(w, &crc, sizeof(crc));
    unsigned char h[NX_CKPT_HEADER_SIZE];
    header_encode(h, w->schema, w->written);
    if (!w->failed && pwrite(w->fd, h, sizeof(h), 0) != (ssize_t)sizeof(h))
        w_fail(w, "write of the header");
    if (!w->failed && fsync(w->fd) != 0)
        w_fail(w, "fsync");
    if (!w->failed && close(w->fd) != 0)
        w_fail(w, "close");
    w->fd = -1;
    if (!w->failed && rename(w->tmp, w->path) != 0)
        w_fail(w, "rename");
    if (!w->failed && fsync_dir(w->path) != 0)
        w_fail(w, "fsync of the directory");
    if (w->failed) {
        snprintf(errstr, errstr_size, "checkpoint not written: %s", w->err);
        nx_checkpoint_abort(w);
        return -1;
    }
    free(w->path);
    free(w->tmp);
    free(w);
    return 0;
}

const char *nx_checkpoint_error(const nx_checkpoint_writer_t *w) {
    return w->failed ? w->err : NULL;
}

void nx_checkpoint_abort(nx_checkpoint_writer_t *w) {
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    if (w->tmp)
        unlink(w->tmp);
    free(w->path);
    free(w->tmp);
    free(w);
}

/* ---- reader ---- */

typedef struct nx_checkpoint_section {
    char name[NX_CHECKPOINT_MAX_NAME + 1];
    long offset; /* of its first chunk header */
} nx_checkpoint_section_t;

struct nx_checkpoint_reader {
    FILE *f;
    int n_sections;
    nx_checkpoint_section_t sections[NX_CHECKPOINT_MAX_SECTIONS];
    int open;            /* a section is positioned */
    uint32_t chunk_left; /* bytes left in the current chunk */
    int section_done;    /* saw the terminating 0 chunk */
    uint64_t left;       /* bytes left in the open section */
};

/* Reads exactly len bytes, adding them to *crc; -1 at end of file. */
static int r_exact(FILE *f, void *buf, size_t len, uint32_t *crc) {
    if (fread(buf, 1, len, f) != len)
        return -1;
    *crc = nx_crc32c(*crc, buf, len);
    return 0;
}

/* Skips len bytes, CRC'ing them. */
static int r_skip(FILE *f, uint64_t len, uint32_t *crc) {
    unsigned char buf[8192];
    while (len > 0) {
        const size_t n = len < sizeof(buf) ? (size_t)len : sizeof(buf);
        if (r_exact(f, buf, n, crc) != 0)
            return -1;
        len -= n;
    }
    return 0;
}

#define R_FAIL(...)                                                                                \
    do {                                                                                           \
        snprintf(errstr, errstr_size, __VA_ARGS__);                                                \
        goto err;                                                                                  \
    } while (0)

nx_checkpoint_reader_t *nx_checkpoint_open(const char *path, uint64_t schema_hash, char *errstr,
                                           size_t errstr_size) {
    nx_checkpoint_reader_t *r = calloc(1, sizeof(*r));
    if (!r)
        R_FAIL("checkpoint: out of memory");
    r->f = fopen(path, "rbe");
    if (!r->f)
        R_FAIL("%s: %s", path, strerror(errno));
    uint32_t crc = 0;
    unsigned char h[NX_CKPT_HEADER_SIZE];
    struct stat st;
    if (fstat(fileno(r->f), &st) != 0)
        R_FAIL("%s: %s", path, strerror(errno));
    if (r_exact(r->f, h, sizeof(h), &crc) != 0)
        R_FAIL("%s: truncated (shorter than the %d-byte header)", path, NX_CKPT_HEADER_SIZE);
    if (memcmp(h, NX_CKPT_MAGIC, 8) != 0)
        R_FAIL("%s: not a nextact checkpoint (bad magic)", path);
    uint32_t version, order, hcrc;
    uint64_t schema, length;
    memcpy(&version, h + 8, 4);
    memcpy(&order, h + 12, 4);
    memcpy(&schema, h + 16, 8);
    memcpy(&length, h + 24, 8);
    memcpy(&hcrc, h + 36, 4);
    if (nx_crc32c(0, h, 36) != hcrc)
        R_FAIL("%s: corrupted header (CRC32C mismatch)", path);
    if (version != NX_CHECKPOINT_VERSION)
        R_FAIL("%s: format version %u, this build reads version %d", path, version,
               NX_CHECKPOINT_VERSION);
    if (order != NX_CKPT_ORDER)
        R_FAIL("%s: written on a machine of the other byte order", path);
    if ((uint64_t)st.st_size < length)
        R_FAIL("%s: truncated (%llu of %llu bytes)", path, (unsigned long long)st.st_size,
               (unsigned long long)length);
    if ((uint64_t)st.st_size > length)
        R_FAIL("%s: corrupted (%llu bytes, header says %llu)", path, (unsigned long long)st.st_size,
               (unsigned long long)length);
    /* The length is right, so any structural surprise below is corruption. */
    crc = 0;
    for (;;) {
        unsigned char tag;
        if (r_exact(r->f, &tag, 1, &crc) != 0)
            R_FAIL("%s: corrupted (structure ends before its trailer)", path);
        if (tag == NX_CKPT_TAG_END)
            break;
        if (tag != NX_CKPT_TAG_SECTION)
            R_FAIL("%s: corrupted (bad section tag 0x%02x)", path, tag);
        unsigned char nlen;
        if (r_exact(r->f, &nlen, 1, &crc) != 0)
            R_FAIL("%s: corrupted (structure ends inside a section header)", path);
        if (nlen == 0 || nlen > NX_CHECKPOINT_MAX_NAME ||
            r->n_sections == NX_CHECKPOINT_MAX_SECTIONS)
            R_FAIL("%s: corrupted (bad section name length or too many sections)", path);
        nx_checkpoint_section_t *s = &r->sections[r->n_sections++];
        if (r_exact(r->f, s->name, nlen, &crc) != 0)
            R_FAIL("%s: corrupted (structure ends inside a section header)", path);
        s->name[nlen] = '\0';
        s->offset = ftell(r->f);
        for (;;) {
            uint32_t len;
            if (r_exact(r->f, &len, 4, &crc) != 0 || r_skip(r->f, len, &crc) != 0)
                R_FAIL("%s: corrupted (structure ends inside section \"%s\")", path, s->name);
            if (len == 0)
                break;
        }
    }
    uint32_t stored;
    if (fread(&stored, 1, 4, r->f) != 4)
        R_FAIL("%s: corrupted (structure ends inside its trailer)", path);
    if (stored != crc)
        R_FAIL("%s: corrupted (CRC32C %08x, stored %08x)", path, crc, stored);
    if (fgetc(r->f) != EOF)
        R_FAIL("%s: corrupted (bytes after the trailer)", path);
    if (schema != schema_hash)
        R_FAIL("%s: written for feature schema %016llx, this configuration has %016llx", path,
               (unsigned long long)schema, (unsigned long long)schema_hash);
    return r;
err:
    nx_checkpoint_close(r);
    return NULL;
}

int nx_checkpoint_section_open(nx_checkpoint_reader_t *r, const char *name) {
    r->open = 0;
    for (int i = 0; i < r->n_sections; i++) {
        if (strcmp(r->sections[i].name, name) != 0)
            continue;
        if (fseek(r->f, r->sections[i].offset, SEEK_SET) != 0)
            return -1;
        /* Sum the chunk lengths (verified at open), then come back. */
        uint64_t total = 0;
        uint32_t len, crc = 0;
        do {
            if (r_exact(r->f, &len, 4, &crc) != 0 || fseek(r->f, len, SEEK_CUR) != 0)
                return -1;
            total += len;
        } while (len != 0);
        if (fseek(r->f, r->sections[i].offset, SEEK_SET) != 0)
            return -1;
        r->open = 1;
        r->chunk_left = 0;
        r->section_done = 0;
        r->left = total;
        return 0;
    }
    return -1;
}

uint64_t nx_checkpoint_section_left(const nx_checkpoint_reader_t *r) {
    return r->open ? r->left : 0;
}

int nx_checkpoint_read(void *ctx, void *buf, size_t len) {
    nx_checkpoint_reader_t *r = ctx;
    if (!r->open || len > r->left)
        return -1;
    unsigned char *p = buf;
    while (len > 0) {
        if (r->chunk_left == 0) {
            uint32_t clen;
            if (fread(&clen, 1, 4, r->f) != 4 || clen == 0)
                return -1;
            r->chunk_left = clen;
        }
        const size_t n = len < r->chunk_left ? len : r->chunk_left;
        if (fread(p, 1, n, r->f) != n)
            return -1;
        p += n;
        len -= n;
        r->chunk_left -= (uint32_t)n;
        r->left -= n;
    }
    return 0;
}

void nx_checkpoint_close(nx_checkpoint_reader_t *r) {
    if (!r)
        return;
    if (r->f)
        fclose(r->f);
    free(r);
}

/* ---- the model section ---- */

/* "mlp.v": u32 version (MLP_SECTION_VERSION), then the payload below. A
 * later version appends fields after the payload and reads this one's by
 * its number. Checkpoints written before the section was versioned hold
 * the payload alone in a section named "mlp": it is still read. */
#define MLP_SECTION         "mlp.v"
#define MLP_SECTION_LEGACY  "mlp"
#define MLP_SECTION_VERSION 1u

/* Dimensions as stored: what must match for the slab layout to agree. */
typedef struct nx_checkpoint_dims {
    int32_t n_in, n_hidden, hidden[NX_MLP_MAX_HIDDEN], n_classes, binary_head, opt;
    uint64_t n_params;
} nx_checkpoint_dims_t;

static void dims_of(const nx_mlp_t *mlp, nx_checkpoint_dims_t *d) {
    const nx_mlp_params_t *p = nx_mlp_params(mlp);
    memset(d, 0, sizeof(*d));
    d->n_in = p->n_in;
    d->n_hidden = p->n_hidden;
    for (int i = 0; i < p->n_hidden; i++)
        d->hidden[i] = p->hidden[i];
    d->n_classes = p->n_classes;
    d->binary_head = p->binary_head;
    d->opt = (int32_t)p->opt;
    d->n_params = nx_mlp_num_params(mlp);
}

int nx_checkpoint_put_mlp(nx_checkpoint_writer_t *w, nx_mlp_t *mlp) {
    nx_checkpoint_dims_t d;
    dims_of(mlp, &d);
    const uint32_t version = MLP_SECTION_VERSION;
    const uint64_t step = nx_mlp_step(mlp);
    const size_t bytes = sizeof(float) * nx_mlp_num_params(mlp);
    if (nx_checkpoint_section_begin(w, MLP_SECTION) != 0 ||
        nx_checkpoint_write(w, &version, sizeof(version)) != 0 ||
        nx_checkpoint_write(w, &d, sizeof(d)) != 0 ||
        nx_checkpoint_write(w, &step, sizeof(step)) != 0 ||
        nx_checkpoint_write(w, nx_mlp_rng(mlp), sizeof(nx_rng_t)) != 0 ||
        nx_checkpoint_write(w, nx_mlp_weights(mlp), bytes) != 0 ||
        nx_checkpoint_write(w, nx_mlp_opt_m(mlp), bytes) != 0 ||
        nx_checkpoint_write(w, nx_mlp_opt_v(mlp), bytes) != 0)
        return -1;
    return nx_checkpoint_section_end(w);
}

int nx_checkpoint_get_mlp(nx_checkpoint_reader_t *r, nx_mlp_t *mlp, char *errstr,
                          size_t errstr_size) {
    nx_checkpoint_dims_t want, got;
    float *slabs = NULL;
    dims_of(mlp, &want);
    if (nx_checkpoint_section_open(r, MLP_SECTION) == 0) {
        uint32_t version;
        if (nx_checkpoint_read(r, &version, sizeof(version)) != 0)
            R_FAIL("model section too short");
        if (version == 0 || version > MLP_SECTION_VERSION)
            R_FAIL("model section version %u; this build reads 1 to %u", version,
                   MLP_SECTION_VERSION);
    } else if (nx_checkpoint_section_open(r, MLP_SECTION_LEGACY) != 0) {
        R_FAIL("checkpoint has no model section");
    }
    if (nx_checkpoint_read(r, &got, sizeof(got)) != 0)
        R_FAIL("model section too short");
    if (memcmp(&got, &want, sizeof(got)) != 0)
        R_FAIL("model dimensions differ: checkpoint n_in %d, %d hidden layers, %d classes, "
               "optimizer %d; configured n_in %d, %d hidden layers, %d classes, optimizer %d",
               got.n_in, got.n_hidden, got.n_classes, got.opt, want.n_in, want.n_hidden,
               want.n_classes, want.opt);
    const size_t n = nx_mlp_num_params(mlp);
    uint64_t step;
    nx_rng_t rng;
    /* Read everything first, so a short section leaves mlp unchanged. */
    slabs = malloc(3 * n * sizeof(float));
    if (!slabs)
        R_FAIL("out of memory");
    if (nx_checkpoint_read(r, &step, sizeof(step)) != 0 ||
        nx_checkpoint_read(r, &rng, sizeof(rng)) != 0 ||
        nx_checkpoint_read(r, slabs, 3 * n * sizeof(float)) != 0)
        R_FAIL("model section too short");
    if (nx_checkpoint_section_left(r) != 0)
        R_FAIL("model section has %llu unexpected bytes",
               (unsigned long long)nx_checkpoint_section_left(r));
    memcpy(nx_mlp_weights(mlp), slabs, n * sizeof(float));
    memcpy(nx_mlp_opt_m(mlp), slabs + n, n * sizeof(float));
    memcpy(nx_mlp_opt_v(mlp), slabs + 2 * n, n * sizeof(float));
    *nx_mlp_rng(mlp) = rng;
    nx_mlp_set_step(mlp, step);
    free(slabs);
    return 0;
err:
    free(slabs);
    return -1;
}
