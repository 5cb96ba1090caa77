# Configuration and logging.
add_executable(test_config ${CMAKE_CURRENT_SOURCE_DIR}/test_config.c)
target_include_directories(test_config PRIVATE ${PROJECT_SOURCE_DIR}/tests/common)
target_link_libraries(test_config PRIVATE nx_daemon)
add_test(NAME config COMMAND test_config ${PROJECT_SOURCE_DIR}/conf/nextactd.conf
         $<TARGET_FILE:nextactd>)
set_tests_properties(config PROPERTIES LABELS unit)
