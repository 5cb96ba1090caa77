/*
 * fuzz_seeds.c: writes the seed corpus for fuzz_codec into DIR: valid
 * events under each fuzz schema (written by Avro C, random content in the
 * unmapped fields), framed and unframed, plus a few hostile shapes.
 *
 * Usage: fuzz_seeds DIR
 */
#include <stdio.h>

#include "fuzz_schemas.h"
#include "test_codec_util.h"

static int n_written;

static void put(const char *dir, uint8_t sel, const uint8_t *msg, size_t len) {
    char path[4096];
    snprintf(path, sizeof path, "%s/seed-%04d", dir, n_written++);
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return;
    fputc(sel, fp);
    fwrite(msg, 1, len, fp);
    fclose(fp);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_seeds DIR\n");
        return 2;
    }
    for (int k = 0; k < FUZZ_N_SCHEMAS; k++) {
        avro_schema_t schema;
        if (avro_schema_from_json_length(fuzz_schemas[k], strlen(fuzz_schemas[k]), &schema)) {
            fprintf(stderr, "schema %d: %s\n", k, avro_strerror());
            return 1;
        }
        for (int i = 0; i < 8; i++) {
            uint8_t buf[4096] = {0, 0, 0, 0, (uint8_t)(k + 1)};
            nx_codec_record_t rec = t_random_record();
            int64_t n = t_avro_encode(schema, &rec, buf + 5, sizeof buf - 5);
            if (n < 0)
                continue;
            put(argv[1], 0, buf, (size_t)n + 5);                       /* framed */
            put(argv[1], (uint8_t)(1 | (k << 1)), buf + 5, (size_t)n); /* unframed */
        }
        avro_schema_decref(schema);
    }
    const uint8_t huge[] = {0,   0,   0,   0,   4,   0x02, 'u',  0x02, 0x0a,
                            'c', 'l', 'i', 'c', 'k', 0x80, 0x80, 0x80, 0x40};
    put(argv[1], 0, huge, sizeof huge);
    const uint8_t neg[] = {0, 0, 0, 0, 1, 0x01};
    put(argv[1], 0, neg, sizeof neg);
    printf("fuzz_seeds: %d seeds in %s\n", n_written, argv[1]);
    return 0;
}
