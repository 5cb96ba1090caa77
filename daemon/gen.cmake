# The clickstream generator (`nextactd gen`): gen.c is the process and its
# oracle (no Kafka/Avro), gen_cmd.c the command line writing OCF or Kafka.
list(APPEND NX_DAEMON_SOURCES
  gen.c
  gen_cmd.c
)
