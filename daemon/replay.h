/*
 * replay.h: `nextactd replay`: the pipeline over files instead of Kafka,
 * for backtests and benchmarks.
 *
 *   nextactd replay -c CONF [--output PATH|-] [--summary PATH]
 *                   [--metrics-every N] [--checkpoint PATH]
 *                   [--codec null|deflate] INPUT...
 *
 * Inputs are Avro container files or CSV (replay_source.h), read in order as one
 * stream. --output writes the predictions: Avro container file for a .avro
 * name (blocks deflated unless --codec null: deflate costs about 0.7 us per
 * record, a third of the pipeline), JSON lines for .jsonl or "-". --summary writes one JSON object
 * of the run's figures. --metrics-every N appends a CSV row of the rolling metrics every N events
 * (to PATH given by --metrics-csv, default stdout when --output is not "-"). --checkpoint writes
 * the model and state at the end. Same inputs, config and seed: byte-identical outputs.
 *
 * The user-id hash key is derived from model.seed rather than the state
 * directory, so a replay is reproducible anywhere.
 */
#ifndef NX_REPLAY_H
#define NX_REPLAY_H

/* argv[0] = "replay". Returns the process exit status. */
int nx_replay_main(int argc, char **argv);

#endif /* NX_REPLAY_H */
