#!/usr/bin/env python3
"""gen_ablation.py: `nextactd replay --summary` against the generator's oracle, per variant.

usage: bench/gen_ablation.py NEXTACTD [--events N] [--users U] [--seeds 1,2,3]
                             [--horizons 1800,300] [--workdir DIR]
                             [-- NAME [KEY=VALUE ...]] ...

Generates one stream per seed and horizon (`nextactd gen --report`, which also
prints the oracle's log loss and AUCs on it), replays each with every variant
(the defaults, then each `-- NAME KEY=VALUE...`: -X overrides; model.seed is the
stream's seed) and prints per variant and horizon the mean and spread over the
seeds of the excess log loss over the oracle's (model / oracle - 1) and the gaps
to the oracle's cart, purchase and macro AUC. Needs only Python 3; the streams
are kept in --workdir (default a temporary directory) and reused if present.
"""
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    argv = sys.argv[1:]
    if not argv or argv[0] in ("-h", "--help"):
        sys.exit(__doc__)
    nextactd = argv.pop(0)
    opts = {"--events": "1000000", "--users": "20000", "--seeds": "1,2,3",
            "--horizons": "1800,300", "--workdir": None}
    while argv and argv[0] != "--":
        k = argv.pop(0)
        if k not in opts or not argv:
            sys.exit("gen_ablation: bad option %s" % k)
        opts[k] = argv.pop(0)
    variants = [("defaults", [])]
    while argv:
        argv.pop(0)  # "--"
        if not argv:
            break
        name, xs = argv.pop(0), []
        while argv and argv[0] != "--":
            xs.append(argv.pop(0))
        variants.append((name, xs))
    work = opts["--workdir"] or tempfile.mkdtemp(prefix="gen_ablation.")
    os.makedirs(work, exist_ok=True)
    conf = os.path.join(work, "replay.conf")
    with open(conf, "w") as f:
        f.write('log_level = "warning";\n'
                'kafka: { brokers = "none"; input_topics = ["in"]; output_topic = "out"; };\n'
                'input: { writer_schema = "%s/conf/schemas/event.avsc"; };\n'
                'checkpoint: { interval_s = 0; };\nmetrics: { listen = ""; };\n' % ROOT)
    seeds, horizons = opts["--seeds"].split(","), opts["--horizons"].split(",")
    oracle = {}
    pat = re.compile(r"log loss ([\d.]+), AUC click ([\d.]+), AUC cart ([\d.]+), "
                     r"AUC purchase ([\d.]+), AUC none ([\d.]+)")
    for h in horizons:
        for s in seeds:
            avro = os.path.join(work, "g%s_s%s.avro" % (h, s))
            rep = avro + ".report"
            if not os.path.exists(rep):
                r = subprocess.run([nextactd, "gen", "--events", opts["--events"], "--users",
                                    opts["--users"], "--seed", s, "--horizon", h, "--output",
                                    avro, "--report"], capture_output=True, text=True, check=True)
                with open(rep, "w") as f:
                    f.write(r.stdout + r.stderr)
            m = pat.search(open(rep).read())
            oracle[(h, s)] = [float(v) for v in m.groups()]
    print("excess log loss over the oracle's, and AUC gaps to it: mean over seeds %s "
          "(± their standard deviation)" % opts["--seeds"])
    for name, xs in variants:
        cols = []
        for h in horizons:
            rows = []
            for s in seeds:
                summ = os.path.join(work, "summary.json")
                cmd = [nextactd, "replay", "-c", conf, "-X", "labels.horizon_s=" + h, "-X",
                       "model.seed=" + s]
                for x in xs:
                    cmd += ["-X", x]
                subprocess.run(cmd + ["--summary", summ, os.path.join(work, "g%s_s%s.avro" %
                                                                      (h, s))], check=True)
                j = json.load(open(summ))
                o, a = oracle[(h, s)], j["auc"]
                macro = statistics.mean([a["click"], a["cart"], a["purchase"], a["none"]])
                rows.append((100 * (j["logloss"] / o[0] - 1), o[2] - a["cart"],
                             o[3] - a["purchase"], statistics.mean(o[1:]) - macro))
            ex = [r[0] for r in rows]
            sd = statistics.stdev(ex) if len(ex) > 1 else 0.0
            cols.append("H%s %5.2f%% ±%.2f cart %.4f purchase %.4f macro %.4f" %
                        (h, statistics.mean(ex), sd, *[statistics.mean(r[k] for r in rows)
                                                       for k in (1, 2, 3)]))
        print("%-18s %s" % (name, " | ".join(cols)), flush=True)


if __name__ == "__main__":
    main()
