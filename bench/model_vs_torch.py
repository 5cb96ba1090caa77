#!/usr/bin/python3
"""Side-by-side throughput: nextact's MLP (bench_model) against PyTorch on the CPU.

Same network as bench_model.c: 64 inputs, hidden 64 and 32 (ReLU), 4 classes,
softmax cross-entropy, Adam lr 1e-3, one thread each. Prints one table.

usage: python3 bench/model_vs_torch.py BUILD/bench/bench_model [seconds]
Runs in the benchmarks' virtual environment (bench/quality/benchenv.py: PyTorch from PyPI), made
with pip the first time.
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "quality"))
import benchenv  # noqa: E402

benchenv.ensure()
import torch  # noqa: E402


def torch_figures(seconds):
    torch.set_num_threads(1)
    torch.manual_seed(42)
    net = torch.nn.Sequential(
        torch.nn.Linear(64, 64), torch.nn.ReLU(),
        torch.nn.Linear(64, 32), torch.nn.ReLU(),
        torch.nn.Linear(32, 4))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    nbatch = 64  # distinct batches cycled, as in bench_model.c
    x = torch.rand(nbatch, 256, 64) * 2 - 1
    y = torch.randint(0, 4, (nbatch, 256))
    out = {}
    for b in (32, 256):
        for k in range(20):  # warm-up
            opt.zero_grad(set_to_none=True)
            loss_fn(net(x[k][:b]), y[k][:b]).backward()
            opt.step()
        n, k, t0 = 0, 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            opt.zero_grad(set_to_none=True)
            loss_fn(net(x[k][:b]), y[k][:b]).backward()
            opt.step()
            n += b
            k = (k + 1) % nbatch
        out["train_b%d" % b] = n / (time.perf_counter() - t0)
    with torch.no_grad():
        n, k, t0 = 0, 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            torch.softmax(net(x[k]), dim=1)
            n += 256
            k = (k + 1) % nbatch
        out["predict_b256"] = n / (time.perf_counter() - t0)
    return out


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    seconds = sys.argv[2] if len(sys.argv) > 2 else "0.5"
    text = subprocess.run([sys.argv[1], seconds], check=True, capture_output=True,
                          text=True).stdout
    c = {}
    for line in text.splitlines():
        name, value = line.split()[:2]
        c[name] = float(value)
    t = torch_figures(float(seconds))
    print("single core; sgemm peak %.1f GFLOP/s (1024^3, OpenBLAS)" % c["sgemm_peak"])
    print("%-14s %14s %14s %8s %10s %8s" % ("figure", "nextact /s", "pytorch /s", "ratio",
                                             "GFLOP/s", "of peak"))
    for name in ("train_b32", "train_b256", "predict_b256"):
        print("%-14s %14.0f %14.0f %7.1fx %10.1f %7.1f%%" % (
            name, c[name], t[name], c[name] / t[name], c[name + "_gflops"],
            c[name + "_share"]))


if __name__ == "__main__":
    main()
