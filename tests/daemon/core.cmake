# Configuration and logging.
add_executable(test_config ${CMAKE_CURRENT_SOURCE_DIR}/test_config.c)
target_include_directories(test_config PRIVATE ${PROJECT_SOURCE_DIR}/tests/common)
target_link_libraries(test_config PRIVATE nx_daemon)
add_test(NAME config COMMAND test_config ${PROJECT_SOURCE_DIR}/conf/nextactd.conf
         $<TARGET_FILE:nextactd>)
set_tests_properties(config PROPERTIES LABELS unit)

# The published schemas (conf/schemas/) against the codec.
add_executable(test_schemas ${CMAKE_CURRENT_SOURCE_DIR}/test_schemas.c)
target_include_directories(test_schemas PRIVATE ${PROJECT_SOURCE_DIR}/tests/common)
target_link_libraries(test_schemas PRIVATE nx_daemon)
add_test(NAME schemas COMMAND test_schemas ${PROJECT_SOURCE_DIR})
set_tests_properties(schemas PROPERTIES LABELS unit)
