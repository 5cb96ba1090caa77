# The main job: Kafka, the pipeline, replay, the daemon loop and the demo.
list(APPEND NX_DAEMON_SOURCES
  ${CMAKE_CURRENT_SOURCE_DIR}/kafka.c
  ${CMAKE_CURRENT_SOURCE_DIR}/pipeline.c
  ${CMAKE_CURRENT_SOURCE_DIR}/replay.c
  ${CMAKE_CURRENT_SOURCE_DIR}/run.c
)
