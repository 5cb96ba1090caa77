# The main job: pipeline quality and determinism (unit), replay CLI, and the
# daemon end to end on the real broker (integration).
add_executable(test_e2e_kafka ${CMAKE_CURRENT_SOURCE_DIR}/test_e2e_kafka.c)
target_link_libraries(test_e2e_kafka PRIVATE nx_daemon nx_testkit)
add_test(NAME e2e_kafka COMMAND test_e2e_kafka $<TARGET_FILE:nextactd> ${PROJECT_SOURCE_DIR})
set_tests_properties(e2e_kafka PROPERTIES FIXTURES_REQUIRED kafka LABELS integration TIMEOUT 600)
# Back-pressure: the output topic appears only after the daemon has paused
# its input with a full producer queue; then everything is delivered once.
add_test(NAME e2e_kafka_backpressure
         COMMAND test_e2e_kafka $<TARGET_FILE:nextactd> ${PROJECT_SOURCE_DIR} 200000 --backpressure)
set_tests_properties(e2e_kafka_backpressure PROPERTIES FIXTURES_REQUIRED kafka LABELS integration
                     TIMEOUT 600)

# The training thread: live pushes never wait (examples dropped and
# counted instead), replay trains every example, the live thread's priority.
add_executable(test_trainer ${CMAKE_CURRENT_SOURCE_DIR}/test_trainer.c)
target_include_directories(test_trainer PRIVATE ${PROJECT_SOURCE_DIR}/tests/common)
target_link_libraries(test_trainer PRIVATE nx_daemon)
add_test(NAME trainer COMMAND test_trainer)
set_tests_properties(trainer PROPERTIES LABELS unit TIMEOUT 120)
