/* ocf.c: Avro container format pieces shared by reader and writer (ocf.h). */
#include "ocf.h"

#include <stdlib.h>
#include <string.h>

const uint8_t nx_ocf_magic[NX_OCF_MAGIC_LEN] = {'O', 'b', 'j', 1};

int nx_ocf_codec_parse(const char *name) {
    if (strcmp(name, "null") == 0)
        return NX_OCF_NULL;
    if (strcmp(name, "deflate") == 0)
        return NX_OCF_DEFLATE;
    if (strcmp(name, "snappy") == 0)
        return NX_OCF_SNAPPY;
    return -1;
}

int nx_ocf_reserve(uint8_t **buf, size_t *cap, size_t need) {
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 65536;
    while (ncap < need)
        ncap *= 2;
    uint8_t *p = realloc(*buf, ncap);
    if (!p)
        return -1;
    *buf = p;
    *cap = ncap;
    return 0;
}
