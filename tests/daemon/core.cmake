# Configuration and logging.
add_executable(test_config ${CMAKE_CURRENT_SOURCE_DIR}/test_config.c)
target_include_directories(test_config PRIVATE ${PROJECT_SOURCE_DIR}/tests/common)
target_link_libraries(test_config PRIVATE nx_daemon)
add_test(NAME config COMMAND test_config ${PROJECT_SOURCE_DIR}/conf/nextactd.conf
         $<TARGET_FILE:nextactd>)
set_tests_properties(config PROPERTIES LABELS unit)

# The command line: -X overrides, sub-commands, --help.
add_executable(test_cli ${CMAKE_CURRENT_SOURCE_DIR}/test_cli.c)
target_include_directories(test_cli PRIVATE ${PROJECT_SOURCE_DIR}/tests/common)
target_link_libraries(test_cli PRIVATE nx_daemon)
add_test(NAME cli COMMAND test_cli $<TARGET_FILE:nextactd>)
set_tests_properties(cli PROPERTIES LABELS unit)

# The published schemas (conf/schemas/) against the codec.
add_executable(test_schemas ${CMAKE_CURRENT_SOURCE_DIR}/test_schemas.c)
target_include_directories(test_schemas PRIVATE ${PROJECT_SOURCE_DIR}/tests/common)
target_link_libraries(test_schemas PRIVATE nx_daemon)
add_test(NAME schemas COMMAND test_schemas ${PROJECT_SOURCE_DIR})
set_tests_properties(schemas PROPERTIES LABELS unit)

# What a start would trip over because of its configuration: run and
# --check-config both exit 78 (preflight.h).
add_executable(test_config_preflight ${CMAKE_CURRENT_SOURCE_DIR}/test_config_preflight.c)
target_include_directories(test_config_preflight PRIVATE ${PROJECT_SOURCE_DIR}/tests/common)
target_link_libraries(test_config_preflight PRIVATE nx_daemon)
add_test(NAME config_preflight COMMAND test_config_preflight $<TARGET_FILE:nextactd>
         ${PROJECT_SOURCE_DIR})
set_tests_properties(config_preflight PROPERTIES LABELS unit TIMEOUT 300)
