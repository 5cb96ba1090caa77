/*
 * fuzz_schemas.h: the writer schemas the codec fuzzer decodes under (the
 * published event, an evolved one with every Avro type, an enum/bytes
 * variant, a recursive one). Shared by fuzz_codec.c and fuzz_seeds.c.
 */
#ifndef NX_FUZZ_SCHEMAS_H
#define NX_FUZZ_SCHEMAS_H

static const char *const fuzz_schemas[] = {
    "{\"type\":\"record\",\"name\":\"Event\",\"fields\":["
    "{\"name\":\"user_id\",\"type\":\"string\"},{\"name\":\"ts\",\"type\":\"long\"},"
    "{\"name\":\"event_type\",\"type\":\"string\"},"
    "{\"name\":\"item_id\",\"type\":[\"null\",\"string\"]},"
    "{\"name\":\"category\",\"type\":[\"null\",\"string\"]},"
    "{\"name\":\"price\",\"type\":[\"null\",\"double\"]},"
    "{\"name\":\"quantity\",\"type\":[\"null\",\"int\"]},"
    "{\"name\":\"session_id\",\"type\":[\"null\",\"string\"]}]}",

    "{\"type\":\"record\",\"name\":\"E2\",\"fields\":["
    "{\"name\":\"extra\",\"type\":{\"type\":\"record\",\"name\":\"In\",\"fields\":["
    "{\"name\":\"b\",\"type\":\"boolean\"},{\"name\":\"f\",\"type\":{\"type\":\"fixed\","
    "\"name\":\"F4\",\"size\":4}},{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":"
    "\"long\"}}]}},"
    "{\"name\":\"event_type\",\"type\":{\"type\":\"enum\",\"name\":\"K\",\"symbols\":"
    "[\"view\",\"cart\",\"purchase\",\"fav\"]}},"
    "{\"name\":\"ts\",\"type\":\"long\"},"
    "{\"name\":\"tags\",\"type\":{\"type\":\"array\",\"items\":\"string\"}},"
    "{\"name\":\"user_id\",\"type\":\"bytes\"},"
    "{\"name\":\"item_id\",\"type\":[\"long\",\"null\"]},"
    "{\"name\":\"price\",\"type\":[\"null\",\"float\"]},"
    "{\"name\":\"f64\",\"type\":\"double\"},{\"name\":\"i32\",\"type\":\"int\"},"
    "{\"name\":\"quantity\",\"type\":[\"null\",\"long\"]},"
    "{\"name\":\"u\",\"type\":[\"null\",\"int\",\"string\",\"In\"]}]}",

    "{\"type\":\"record\",\"name\":\"E3\",\"fields\":["
    "{\"name\":\"user_id\",\"type\":[\"null\",\"string\"]},"
    "{\"name\":\"ts\",\"type\":[\"null\",\"long\"]},"
    "{\"name\":\"event_type\",\"type\":[\"null\",\"bytes\"]},"
    "{\"name\":\"price\",\"type\":[\"null\",\"int\"]}]}",

    "{\"type\":\"record\",\"name\":\"E4\",\"fields\":["
    "{\"name\":\"next\",\"type\":[\"null\",\"E4\"]},"
    "{\"name\":\"user_id\",\"type\":\"string\"},{\"name\":\"ts\",\"type\":\"long\"},"
    "{\"name\":\"event_type\",\"type\":\"string\"},"
    "{\"name\":\"grid\",\"type\":{\"type\":\"array\",\"items\":{\"type\":\"array\","
    "\"items\":\"null\"}}}]}",
};

#define FUZZ_N_SCHEMAS 4

#endif /* NX_FUZZ_SCHEMAS_H */
