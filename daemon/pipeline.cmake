# The main job: Kafka, the pipeline, replay, the daemon loop and the demo.
list(APPEND NX_DAEMON_SOURCES
  ${CMAKE_CURRENT_SOURCE_DIR}/kafka.c
  ${CMAKE_CURRENT_SOURCE_DIR}/pipeline.c
  ${CMAKE_CURRENT_SOURCE_DIR}/replay.c
  ${CMAKE_CURRENT_SOURCE_DIR}/run.c
  ${CMAKE_CURRENT_SOURCE_DIR}/demo.c
  ${CMAKE_CURRENT_SOURCE_DIR}/offsets.c
  ${CMAKE_CURRENT_SOURCE_DIR}/handover.c
)
# the trainer thread (pipeline.c)
find_package(Threads REQUIRED)
cmake_language(DEFER CALL target_link_libraries nx_daemon PUBLIC Threads::Threads)
