# The Schema Registry client against the registry fixture (unit); a
# partition sent back to a record and held, on the mock cluster (unit); the
# daemon with a registry that fails for a while, on the real broker
# (integration).
add_executable(test_registry ${CMAKE_CURRENT_SOURCE_DIR}/test_registry.c)
target_link_libraries(test_registry PRIVATE nx_daemon nx_testkit)
add_test(NAME registry COMMAND test_registry ${PROJECT_SOURCE_DIR} $<TARGET_FILE:nextactd>)
set_tests_properties(registry PROPERTIES LABELS unit TIMEOUT 120)

add_executable(test_kafka_rewind ${CMAKE_CURRENT_SOURCE_DIR}/test_kafka_rewind.c)
target_link_libraries(test_kafka_rewind PRIVATE nx_daemon nx_testkit)
add_test(NAME kafka_rewind COMMAND test_kafka_rewind)
set_tests_properties(kafka_rewind PROPERTIES LABELS unit TIMEOUT 120)

add_executable(test_e2e_registry ${CMAKE_CURRENT_SOURCE_DIR}/test_e2e_registry.c)
target_link_libraries(test_e2e_registry PRIVATE nx_daemon nx_testkit)
add_test(NAME e2e_registry COMMAND test_e2e_registry $<TARGET_FILE:nextactd> ${PROJECT_SOURCE_DIR})
set_tests_properties(e2e_registry PROPERTIES FIXTURES_REQUIRED kafka LABELS integration
                     TIMEOUT 300)
