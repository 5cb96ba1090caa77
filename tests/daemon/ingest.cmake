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

# libFuzzer target over the codec (scripts/fuzz builds and runs it). Built
# from the codec's own sources, not nx_daemon, so that it needs only clang,
# Avro C and the codec.
if(NX_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "NX_FUZZ needs clang (CC=clang)")
  endif()
  # the codec's rooms (daemon/codec_int.h): a missing one fails the link
  set(nx_codec_sources
    ${PROJECT_SOURCE_DIR}/daemon/codec.c
    ${PROJECT_SOURCE_DIR}/daemon/codec_schema.c
    ${PROJECT_SOURCE_DIR}/daemon/codec_confluent.c)
  add_executable(fuzz_codec
    ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_codec.c
    ${nx_codec_sources}
    ${PROJECT_SOURCE_DIR}/features/event.c)
  target_include_directories(fuzz_codec PRIVATE
    ${PROJECT_SOURCE_DIR}/daemon ${PROJECT_SOURCE_DIR}/features ${PROJECT_SOURCE_DIR}/tests/fuzz)
  target_compile_options(fuzz_codec PRIVATE -g -fsanitize=fuzzer,address,undefined
    -fno-sanitize-recover=undefined)
  target_link_options(fuzz_codec PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(fuzz_codec PRIVATE PkgConfig::AVRO ${MATH_LIBRARY})

  add_executable(fuzz_seeds ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_seeds.c
    ${nx_codec_sources} ${PROJECT_SOURCE_DIR}/features/event.c)
  target_include_directories(fuzz_seeds PRIVATE
    ${PROJECT_SOURCE_DIR}/daemon ${PROJECT_SOURCE_DIR}/features ${PROJECT_SOURCE_DIR}/tests/fuzz
    ${CMAKE_CURRENT_SOURCE_DIR})
  target_compile_definitions(fuzz_seeds PRIVATE NX_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  target_link_libraries(fuzz_seeds PRIVATE PkgConfig::AVRO ${MATH_LIBRARY})
endif()

# librdkafka's statistics JSON read for the consumer lag and brokers up.
add_executable(test_kafka_stats test_kafka_stats.c)
target_include_directories(test_kafka_stats PRIVATE ${PROJECT_SOURCE_DIR}/tests/common)
target_link_libraries(test_kafka_stats PRIVATE nx_daemon)
add_test(NAME kafka_stats COMMAND test_kafka_stats)
set_tests_properties(kafka_stats PROPERTIES LABELS unit)
