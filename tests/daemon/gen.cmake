# Generator: determinism, time order, rates, the truth (Monte Carlo and
# calibration), the OCF file read back with Avro C.
add_executable(test_gen ${CMAKE_CURRENT_LIST_DIR}/test_gen.c)
target_link_libraries(test_gen PRIVATE nx_daemon)
add_test(NAME test_gen COMMAND test_gen WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
set_tests_properties(test_gen PROPERTIES LABELS unit)
