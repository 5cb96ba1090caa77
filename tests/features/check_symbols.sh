#!/bin/sh
# Fails if the static library names an undefined Kafka, Avro or libconfig
# symbol: features/ must link only libm (DESIGN.md).
# usage: check_symbols.sh path/to/libnx_features.a
lib="$1"
if [ ! -f "$lib" ]; then
    echo "check_symbols: no library at '$lib'" >&2
    exit 2
fi
undef=$(nm -u "$lib") || { echo "check_symbols: nm failed" >&2; exit 2; }
bad=$(printf '%s\n' "$undef" | grep -E '(^|[[:space:]])(rd_kafka_|avro_|config_)' || true)
if [ -n "$bad" ]; then
    echo "check_symbols: $lib references forbidden symbols:" >&2
    printf '%s\n' "$bad" >&2
    exit 1
fi
echo "check_symbols: $lib is clean"
