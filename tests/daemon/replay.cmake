# Replay and quality tests of the main job: `nextactd
# replay` as a subprocess (determinism, summary, metrics CSV, CSV samples),
# the model against the generator's oracle, and the malformed-input soak.
add_executable(test_replay ${CMAKE_CURRENT_LIST_DIR}/test_replay.c)
target_include_directories(test_replay PRIVATE ${PROJECT_SOURCE_DIR}/tests/common)
target_link_libraries(test_replay PRIVATE nx_model PkgConfig::AVRO)
add_test(NAME test_replay COMMAND test_replay $<TARGET_FILE:nextactd> ${PROJECT_SOURCE_DIR})
set_tests_properties(test_replay PROPERTIES LABELS unit TIMEOUT 120)

# The model against the generator's truth (log loss within 5%, purchase AUC
# within 0.02 after 200k events) and bad payloads changing no prediction.
add_executable(test_quality ${CMAKE_CURRENT_LIST_DIR}/test_quality.c)
target_include_directories(test_quality PRIVATE ${PROJECT_SOURCE_DIR}/tests/common)
target_link_libraries(test_quality PRIVATE nx_daemon)
add_test(NAME test_quality COMMAND test_quality)
set_tests_properties(test_quality PROPERTIES LABELS unit TIMEOUT 60)
# The same with bad messages taking poll slots, as in the daemon: the good
# events' batch boundaries move, and the predictions must not move with them
# (the pipeline works in steps fixed by the event count, see pipeline.c).
add_test(NAME test_quality_batches COMMAND test_quality --bad-takes-slots)
set_tests_properties(test_quality_batches PROPERTIES LABELS unit TIMEOUT 60)

# Soak: 100k malformed messages through nextactd on the real
# broker grow its resident memory by less than 1 MB.
add_executable(test_soak ${CMAKE_CURRENT_LIST_DIR}/test_soak.c)
target_link_libraries(test_soak PRIVATE nx_daemon nx_testkit)
add_test(NAME test_soak COMMAND test_soak $<TARGET_FILE:nextactd> ${PROJECT_SOURCE_DIR})
set_tests_properties(test_soak PROPERTIES FIXTURES_REQUIRED kafka LABELS integration TIMEOUT 300)
# A concept drift (click and cart swap from event 100k): the learning-rate
# floor must bring the model back within 5% of the oracle (a rate decayed
# to ~0 fails it); and the quality bounds on two more generator seeds.
add_test(NAME test_quality_drift COMMAND test_quality --drift)
add_test(NAME test_quality_seed7 COMMAND test_quality --seed 7)
add_test(NAME test_quality_seed99 COMMAND test_quality --seed 99)
set_tests_properties(test_quality_drift test_quality_seed7 test_quality_seed99
                     PROPERTIES LABELS unit TIMEOUT 60)
# Reasons per prediction and the model guard, through the pipeline.
add_executable(test_guard ${CMAKE_CURRENT_LIST_DIR}/test_guard.c)
target_include_directories(test_guard PRIVATE ${PROJECT_SOURCE_DIR}/tests/common)
target_link_libraries(test_guard PRIVATE nx_daemon)
add_test(NAME guard COMMAND test_guard ${PROJECT_SOURCE_DIR})
set_tests_properties(guard PROPERTIES LABELS unit TIMEOUT 120)
