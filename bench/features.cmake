# bench_features: feature store memory per user, update throughput with
# Zipf-like access, longest maintenance tick.
# Run: bench_features [users] [events] [batch]   (defaults 1000000 5000000 256)
add_executable(bench_features ${CMAKE_CURRENT_SOURCE_DIR}/bench_features.c)
target_link_libraries(bench_features PRIVATE nx_features)
