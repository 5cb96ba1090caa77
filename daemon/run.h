/*
 * run.h: the daemon's main loop (`nextactd [run] -c CONF`) and the demo
 * (`nextactd demo`): Kafka in, the pipeline, predictions out.
 *
 * One thread runs the loop: poll a batch (kafka.poll_batch records, waiting
 * at most kafka.poll_timeout_ms), decode it (bad records to the dead-letter
 * topic, counted by reason), run the pipeline (features, one forward pass,
 * one prediction per event produced with the input record's ticket, labels,
 * training), then a tick of maintenance. librdkafka's threads do the
 * network.
 *
 * Signals: SIGTERM/SIGINT stop polling; the batch in hand is finished, the
 * producer flushed (kafka.flush_timeout_ms), offsets committed, and the
 * process exits 0. SIGHUP re-reads the configuration file and applies the
 * log level; settings that cannot change while running are reported.
 */
#ifndef NX_RUN_H
#define NX_RUN_H

/* argv[0] = "run" or the program. Returns the exit status. */
int nx_run_main(int argc, char **argv);

/* argv[0] = "demo". */
int nx_demo_main(int argc, char **argv);

#endif /* NX_RUN_H */
