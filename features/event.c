/* event.c: identifier hashing for nx_event_t (see event.h). */
#include "event.h"

uint64_t nx_event_id_hash(const void *data, size_t len) {
    /* FNV-1a 64 followed by a murmur3 finaliser: FNV alone mixes the last
     * bytes poorly, and ids such as "item-1".."item-9" differ only there.
     * Identifiers are not secret, so no key is needed here (user ids, which
     * are, go through the store's keyed SipHash instead). */
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h ? h : 1;
}
