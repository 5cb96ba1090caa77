# The Schema Registry client against the registry fixture (unit).
add_executable(test_registry ${CMAKE_CURRENT_SOURCE_DIR}/test_registry.c)
target_link_libraries(test_registry PRIVATE nx_daemon nx_testkit)
add_test(NAME registry COMMAND test_registry ${PROJECT_SOURCE_DIR} $<TARGET_FILE:nextactd>)
set_tests_properties(registry PROPERTIES LABELS unit TIMEOUT 120)
