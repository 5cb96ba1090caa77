#!/usr/bin/env python3
"""plot_importance.py: the global importance of each feature, as a PNG.

Reads the summary JSON that `nextactd replay --summary FILE` writes with
output.explain > 0 (its "importance" object: each feature's mean
|contribution| to the explained class's score, DeepLIFT against the average
event) and draws the features as horizontal bars, the largest on top.

usage: plot_importance.py SUMMARY.json OUT.png [--top N] [--title T]

Run it through bench/plot, which brings matplotlib in a virtual environment
of its own: bench/plot importance SUMMARY.json OUT.png
"""
import argparse
import json
import sys

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("summary")
    ap.add_argument("out")
    ap.add_argument("--top", type=int, default=20, help="features shown (default 20)")
    ap.add_argument("--title", default="Global feature importance (mean |contribution|)")
    a = ap.parse_args()
    with open(a.summary) as f:
        s = json.load(f)
    imp = s.get("importance")
    if not imp:
        sys.exit(f"{a.summary}: no \"importance\" (replay with output.explain > 0)")
    items = sorted(imp.items(), key=lambda kv: kv[1] or 0.0, reverse=True)[: a.top]
    names = [k for k, _ in items][::-1]
    vals = [v or 0.0 for _, v in items][::-1]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(names) + 1.2))
    ax.barh(names, vals, color="#3b6ea5")
    ax.set_xlabel("mean |contribution| to the explained class's score")
    ax.set_title(f"{a.title}\n{s.get('explained', 0):,} predictions explained", fontsize=10)
    fig.tight_layout()
    fig.savefig(a.out, dpi=120)
    print(f"{a.out}: {len(names)} features")


if __name__ == "__main__":
    main()
