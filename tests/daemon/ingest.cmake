# Tests of the ingest decoding half: codec, prediction encoder, replay I/O.
add_executable(test_codec test_codec.c)
target_link_libraries(test_codec PRIVATE nx_daemon)
add_test(NAME test_codec COMMAND test_codec)
set_tests_properties(test_codec PROPERTIES LABELS unit)

add_executable(test_replay_io test_replay_io.c)
target_link_libraries(test_replay_io PRIVATE nx_daemon)
add_test(NAME test_replay_io COMMAND test_replay_io)
set_tests_properties(test_replay_io PROPERTIES LABELS unit)

add_executable(test_codec_predenc test_codec_predenc.c)
target_link_libraries(test_codec_predenc PRIVATE nx_daemon)
add_test(NAME test_codec_predenc COMMAND test_codec_predenc)
set_tests_properties(test_codec_predenc PROPERTIES LABELS unit)
