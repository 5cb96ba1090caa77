# Replay and quality tests of the main job (issues 3 and 6): `nextactd
# replay` as a subprocess (determinism, summary, metrics CSV, CSV samples),
# the model against the generator's oracle, and the malformed-input soak.
add_executable(test_replay ${CMAKE_CURRENT_LIST_DIR}/test_replay.c)
target_include_directories(test_replay PRIVATE ${PROJECT_SOURCE_DIR}/tests/common)
target_link_libraries(test_replay PRIVATE PkgConfig::AVRO)
add_test(NAME test_replay COMMAND test_replay $<TARGET_FILE:nextactd> ${PROJECT_SOURCE_DIR})
set_tests_properties(test_replay PROPERTIES LABELS unit TIMEOUT 120)
