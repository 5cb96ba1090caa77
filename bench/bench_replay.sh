#!/bin/sh
# bench_replay.sh: `nextactd replay` throughput, printed as a table.
#
# Generates an Avro OCF of the generator's events once (null codec, so the
# figure is the pipeline's, not inflate's), then replays it with the default
# configuration, training on:
#   - predictions discarded (no --output),
#   - predictions written as JSON lines, and as an Avro container in each
#     codec (snappy, replay's default; deflate; null);
# and the same three with model.enabled = false (decode, features, encode
# only), to show what the model costs. Each figure is the best of REPS runs
# (the machine is shared). OpenBLAS picks a slow SSE3 kernel on some VMs unless
# OPENBLAS_CORETYPE is set: run once plain and once with
# OPENBLAS_CORETYPE=Haswell to compare.
#
# usage: bench/bench_replay.sh [BUILD_DIR] [EVENTS] [REPS]
#        (defaults: build, 1000000, 3)
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
events=${2:-1000000}
reps=${3:-3}
nextactd=$build/nextactd
[ -x "$nextactd" ] || { echo "no $nextactd: build first" >&2; exit 1; }

tmp=$(mktemp -d /tmp/bench_replay.XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM

# A configuration that needs no broker: replay ignores kafka.*, but the
# table requires brokers. Schemas from the source tree.
common="log_level = \"warning\";
kafka: { brokers = \"none\"; input_topics = [\"in\"]; output_topic = \"out\"; };
input: { writer_schema = \"$here/conf/schemas/event.avsc\"; };
output: { schema = \"$here/conf/schemas/prediction.avsc\"; };"
printf '%s\n' "$common" > "$tmp/on.conf"
printf '%s\nmodel: { enabled = false; };\n' "$common" > "$tmp/off.conf"

"$nextactd" gen --events "$events" --users 100000 --seed 1 --codec null \
    --output "$tmp/in.avro" > /dev/null 2>&1

# best events/s of $reps runs of: replay CONF [ARGS...]
best() {
    conf=$1
    shift
    b=0
    i=0
    while [ $i -lt "$reps" ]; do
        "$nextactd" replay -c "$conf" --summary "$tmp/s.json" "$@" "$tmp/in.avro"
        r=$(sed -n 's/.*"events_per_second": \([0-9]*\).*/\1/p' "$tmp/s.json")
        [ "$r" -gt "$b" ] && b=$r
        i=$((i + 1))
    done
    echo "$b"
}

echo "nextactd replay, $events events ($(du -h "$tmp/in.avro" | cut -f1) OCF, null codec)," \
    "best of $reps, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
printf '%-22s %14s %14s\n' "output" "model on" "model off"
for out in none jsonl avro-snappy avro-deflate avro-null; do
    case $out in
    none) args= ;;
    jsonl) args="--output $tmp/out.jsonl" ;;
    avro-*) args="--output $tmp/out.avro --codec ${out#avro-}" ;;
    esac
    # shellcheck disable=SC2086 # $args is two words or none
    on=$(best "$tmp/on.conf" $args)
    # shellcheck disable=SC2086
    off=$(best "$tmp/off.conf" $args)
    printf '%-22s %10s ev/s %10s ev/s\n' "$out" "$on" "$off"
done
