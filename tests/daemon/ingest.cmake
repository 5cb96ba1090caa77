# Tests of the ingest decoding half: codec, prediction encoder, replay I/O.
add_executable(test_codec test_codec.c)
target_link_libraries(test_codec PRIVATE nx_daemon)
add_test(NAME test_codec COMMAND test_codec)
set_tests_properties(test_codec PROPERTIES LABELS unit)
