"""benchenv.py: the Python environment of the benchmarks that compare nextact with Python peers.

ensure() runs the calling script again inside a virtual environment that it creates with pip
the first time ($NX_BENCH_VENV, default ~/.cache/nextact/bench-venv): PyTorch, River,
scikit-learn, pandas and fastavro (to read the generator's Avro files). Nothing is fetched once
it exists. PyPI's PyTorch wheel for Linux carries CUDA libraries (a few GB); here it runs on the
CPU, with one thread, as nextactd does.
"""
import os
import subprocess
import sys
import venv

# the versions the figures in bench/README.md were measured with
PACKAGES = ["torch==2.15.0", "river==0.26.1", "scikit-learn==1.9.1", "pandas==3.1.1",
            "fastavro==1.13.1"]


def ensure():
    home = os.environ.get("NX_BENCH_VENV") or os.path.expanduser("~/.cache/nextact/bench-venv")
    if os.path.realpath(sys.prefix) == os.path.realpath(home):
        return
    py = os.path.join(home, "bin", "python")
    ready = os.path.join(home, ".nextact-ready")
    want = " ".join(PACKAGES) + "\n"
    if not os.path.exists(ready) or open(ready).read() != want:
        print("bench: creating %s (pip install %s)" % (home, " ".join(PACKAGES)),
              file=sys.stderr, flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(home)
        subprocess.run([py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"] +
                       PACKAGES, check=True)
        with open(ready, "w") as f:
            f.write(want)
    os.execv(py, [py] + sys.argv)
