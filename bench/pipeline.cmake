# Benchmarks of the main job; they print figures, they are not
# tests. bench_replay.sh (replay events/s), bench_kafka.sh (end to end on the
# real broker) and plot_learning_curves.py are scripts beside this file.
#
# bench_kafka: nextactd on the real broker, sustained events/s and the
# latency from an event's produce to its prediction's arrival.
# Run: bench_kafka NEXTACTD SOURCE_DIR [--events N] [--rate R] [--seconds S]
#      [--model on|off]   (or bench/bench_kafka.sh)
# nx_testkit (tests/, added before bench/) is required: without it the
# link fails instead of the benchmark silently not being built.
add_executable(bench_kafka ${CMAKE_CURRENT_LIST_DIR}/bench_kafka.c
  ${CMAKE_CURRENT_LIST_DIR}/bench_ceiling.c ${CMAKE_CURRENT_LIST_DIR}/bench_figures.c)
target_link_libraries(bench_kafka PRIVATE nx_daemon nx_testkit)
