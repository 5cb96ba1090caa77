/*
 * event.h: the plain event every stage after decoding sees.
 *
 * daemon/ converts Kafka records, Avro payloads and replay rows into
 * nx_event_t; features/ and the pipeline read nothing else. The struct holds
 * no pointers it owns: user_id borrows the bytes of the payload it was
 * decoded from (a Kafka message, a replay reader's buffer) and is valid as
 * long as that payload is (see daemon/codec.h).
 *
 * Item, category and session identifiers are reduced to 64-bit hashes by the
 * decoder (nx_event_id_hash), so the store compares fixed-size words; 0 means
 * "absent".
 */
#ifndef NX_EVENT_H
#define NX_EVENT_H

#include <stddef.h>
#include <stdint.h>

/* At most this many configured event types (click, cart, purchase, ...).
 * The model adds one more class, `none`. */
#define NX_EVENT_MAX_TYPES 8

/* Longest user id accepted anywhere (bytes); config may set a lower cap. */
#define NX_EVENT_USER_ID_MAX 256

typedef struct nx_event {
    const char *user_id;  /* borrowed, not NUL-terminated */
    uint32_t user_id_len; /* bytes, 1..NX_EVENT_USER_ID_MAX */
    int32_t type;         /* index into the configured event types */
    int64_t ts_ms;        /* event time, ms since the Unix epoch */
    uint64_t item;        /* hash of the item id, 0 = absent */
    uint64_t category;    /* hash of the category, 0 = absent */
    uint64_t session;     /* hash of the session id, 0 = absent */
    double price;         /* unit price, NaN = absent */
    int32_t quantity;     /* units, 0 = absent */
    int32_t partition;    /* input partition, -1 in replay */
    int64_t offset;       /* input offset, or row/record number in replay */
    int32_t topic;        /* index of the input topic, 0 in replay */
} nx_event_t;

/* Hash of an identifier (item, category, session) for nx_event_t: a fixed,
 * unkeyed 64-bit hash, never 0 (0 means absent). Stable across runs and
 * machines, so replays are deterministic. */
uint64_t nx_event_id_hash(const void *data, size_t len);

#endif /* NX_EVENT_H */
