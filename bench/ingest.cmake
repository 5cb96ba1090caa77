# Decode and replay-read throughput (prints figures; not a test).
add_executable(bench_decode bench_decode.c)
target_link_libraries(bench_decode PRIVATE nx_daemon)
# bench_decode reuses the tests' seeded event generator and configuration.
target_include_directories(bench_decode PRIVATE ${PROJECT_SOURCE_DIR}/tests/daemon)
