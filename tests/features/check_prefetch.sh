#!/bin/sh
# Fails if the store's software pipeline lost prefetch instructions. GCC 12
# once deleted a call of a helper whose only effect was __builtin_prefetch
# (it looked side-effect free), silently: every test still passed and only
# the 10M-user benchmark showed it. The update pipeline has 7 prefetch
# sites (bucket, record, chain record, 2 + 2 neighbour links).
# usage: check_prefetch.sh path/to/libnx_features.a
lib="$1"
want=7
if [ ! -f "$lib" ]; then
    echo "check_prefetch: no library at '$lib'" >&2
    exit 2
fi
dis=$(objdump -d --no-show-raw-insn "$lib") || { echo "check_prefetch: objdump failed" >&2; exit 2; }
n=$(printf '%s\n' "$dis" | grep -cE '[[:space:]]prefetch(t0|t1|t2|nta|w)[[:space:]]')
if [ "$n" -lt "$want" ]; then
    echo "check_prefetch: $lib has $n prefetch instructions, the store's pipeline has $want" >&2
    exit 1
fi
echo "check_prefetch: $n prefetch instructions (at least $want)"
