/* schema_file.c: see schema_file.h. */
#include "schema_file.h"

#include <stdio.h>

int nx_schema_file(const char *path, avro_schema_t *schema) {
    static char json[1 << 16];
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return -1;
    }
    size_t len = fread(json, 1, sizeof json - 1, f);
    fclose(f);
    json[len] = '\0';
    if (avro_schema_from_json_length(json, len, schema) != 0) {
        fprintf(stderr, "%s: %s\n", path, avro_strerror());
        return -1;
    }
    return 0;
}
