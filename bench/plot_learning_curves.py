#!/usr/bin/env python3
"""plot_learning_curves.py: learning curves of a replay, as a PNG.

Reads the CSV that `nextactd replay --metrics-every N --metrics-csv FILE`
writes (columns: events, labelled, steps, window_logloss, window_accuracy,
window_auc_<class>..., logloss, accuracy) and draws three panels against the
number of events: log loss (rolling window and cumulative), accuracy (same)
and the rolling one-vs-rest AUC of each class. Optional horizontal lines mark
an oracle's figures (e.g. from `nextactd gen --report`).

usage: plot_learning_curves.py METRICS.csv OUT.png [--title T]
           [--oracle-logloss X] [--oracle-auc CLASS=X ...]

Run it through bench/plot, which brings matplotlib in a virtual environment
of its own: bench/plot learning-curves METRICS.csv OUT.png
"""
import argparse
import csv
import sys

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402


def read(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        sys.exit(f"{path}: no rows (was --metrics-every given?)")
    cols = {k: [] for k in rows[0]}
    for r in rows:
        for k, v in r.items():
            try:
                cols[k].append(float(v))
            except (TypeError, ValueError):
                cols[k].append(float("nan"))
    return cols


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("csv")
    ap.add_argument("png")
    ap.add_argument("--title", default="nextactd replay: learning curves")
    ap.add_argument("--oracle-logloss", type=float)
    ap.add_argument("--oracle-auc", action="append", default=[], metavar="CLASS=X")
    a = ap.parse_args()

    c = read(a.csv)
    ev = c["events"]
    classes = [k[len("window_auc_"):] for k in c if k.startswith("window_auc_")]
    oracle_auc = dict(s.split("=", 1) for s in a.oracle_auc)

    fig, ax = plt.subplots(3, 1, figsize=(8, 10), sharex=True)
    ax[0].plot(ev, c["window_logloss"], label="rolling window")
    ax[0].plot(ev, c["logloss"], label="cumulative")
    if a.oracle_logloss is not None:
        ax[0].axhline(a.oracle_logloss, color="k", ls="--", lw=1, label="oracle")
    ax[0].set_ylabel("log loss (nats)")
    ax[0].legend()

    ax[1].plot(ev, c["window_accuracy"], label="rolling window")
    ax[1].plot(ev, c["accuracy"], label="cumulative")
    ax[1].set_ylabel("accuracy")
    ax[1].legend()

    for k in classes:
        (line,) = ax[2].plot(ev, c["window_auc_" + k], label=k)
        if k in oracle_auc:
            ax[2].axhline(float(oracle_auc[k]), color=line.get_color(), ls="--", lw=1)
    ax[2].set_ylabel("AUC, one vs rest (window)")
    ax[2].set_xlabel("events")
    ax[2].legend(ncol=len(classes))

    for x in ax:
        x.grid(alpha=0.3)
    fig.suptitle(a.title)
    fig.tight_layout()
    fig.savefig(a.png, dpi=100)
    print(f"wrote {a.png} ({len(ev)} points)")


if __name__ == "__main__":
    main()
