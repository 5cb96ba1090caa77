# bench_model: MLP training/prediction throughput and sgemm share.
# Run: bench_model [seconds-per-figure]; bench/model_vs_torch.py adds PyTorch.
add_executable(bench_model ${CMAKE_CURRENT_SOURCE_DIR}/bench_model.c)
target_link_libraries(bench_model PRIVATE nx_model)
