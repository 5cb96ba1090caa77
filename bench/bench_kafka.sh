#!/bin/sh
# bench_kafka.sh: nextactd end to end on the real local broker.
#
# Runs build/bench/bench_kafka (bench/bench_kafka.c) three or four times on
# fresh topics (4 input partitions):
#   1. sustained throughput, model on: EVENTS produced first, then drained
#      (events/s between the first and the last prediction; committed
#      offsets reach the end offsets);
#   2. the same with model.enabled = false (decode, features, produce only);
#   3. latency produce -> prediction at a fixed 20,000 events/s for SECONDS,
#      model on (p50, p99, p99.9, max), after two unreported 5 s runs that
#      warm the broker's JVM up;
#   4. the same with the model off.
# The broker is scripts/kafka's on $NX_KAFKA_PORT (default 39092); it is
# started if it is not running, and stopped again at the end in that case.
# nextactd asks for the CPU's best OpenBLAS kernels itself; OPENBLAS_CORETYPE
# set here is obeyed.
#
# usage: bench/bench_kafka.sh [BUILD_DIR] [EVENTS] [SECONDS]
#        (defaults: build, 1000000, 10)
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
events=${2:-1000000}
secs=${3:-10}
tool=$build/bench/bench_kafka
[ -x "$tool" ] || { echo "no $tool: build first" >&2; exit 1; }

started=
if ! "$here/scripts/kafka" status > /dev/null 2>&1; then
    "$here/scripts/kafka" start > /dev/null
    started=1
fi
cleanup() { [ -z "$started" ] || "$here/scripts/kafka" stop; }
trap cleanup EXIT INT TERM

echo "nextactd end to end, broker 127.0.0.1:${NX_KAFKA_PORT:-39092}," \
    "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
for model in on off; do
    "$tool" "$build/nextactd" "$here" --events "$events" --model $model | sed -n "2,3p"
done
# Warm-up, not reported: a broker fresh from start-up (its JIT has not
# compiled the paths of small, steady fetches and produces yet) ran the first
# latency runs after the throughput ones at p50 40 ms-1.4 s; from the third
# on, p50 5 ms. A broker in service is warm.
for model in on off; do
    "$tool" "$build/nextactd" "$here" --rate 20000 --seconds 5 --model $model > /dev/null
done
for model in on off; do
    "$tool" "$build/nextactd" "$here" --rate 20000 --seconds "$secs" --model $model | sed -n 1p
done
