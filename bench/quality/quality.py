#!/usr/bin/env python3
"""quality.py: nextactd against online peers, on the same events, labels and schedule.

usage: bench/quality/quality.py NEXTACTD [--events N] [--users U] [--seeds 1,2,3]
           [--horizons 1800,300] [--workdir DIR] [--taobao CSV] [--rees46 CSV] [--no-tree]

For each data set and horizon H, and each seed (the generator's stream and every model's seed),
every method predicts each event before it learns anything about it, and learns each example
when its label resolves: the type of the user's next event if it comes within H, else `none`
once the stream has passed the event's time + H + labels.allowed_lateness_ms (the watermark).
Examples whose label is still open at the end are left out, for all methods alike. Methods:

  oracle      the generator's true probabilities (`nextactd gen --truth`), generator only
  nextactd    `nextactd replay` with the default configuration (its predictions, one per event)
  torch-mlp   PyTorch MLP 64-32 (ReLU), Adam lr 1e-3, mini-batches of 32 as labels resolve
  sgd-logreg  scikit-learn SGDClassifier(log_loss), partial_fit on the same mini-batches
  river-lr    River StandardScaler | OneVsRestClassifier(LogisticRegression()), learn_one
  river-hat   River HoeffdingAdaptiveTreeClassifier, learn_one (--no-tree leaves it out: slow)
  prior       the running class frequencies of the labels resolved so far

The Python methods see simple causal features computed here from each user's own events up to
and including the current one: the event type; counts per type over 5 min, 30 min and 2 h; time
since the user's previous event of each type and since the previous event; touches of the same
item and category; position, duration and cart adds of the session (30 min gap); hour of day;
the price (log). They are standardised with running means and variances (up to the event).
nextactd sees the same events through its own features.

Figures, over all labelled examples and over those of the last 30% of the events: log loss,
macro AUC (one-vs-rest, the mean over the classes), purchase AUC, and each class's AUC; the mean
over the seeds and their standard deviation. The oracle row is the best any method can do.

Data: the generator (`nextactd gen`, --events/--users), and public clickstreams given as files,
sorted here by time: --taobao (Taobao UserBehavior: user,item,category,behavior,timestamp; pv,
cart and buy taken, fav skipped) and --rees46 (REES46 e-commerce: event_time,event_type,...).
Nothing is fetched at run time. Runs in its own virtual environment (benchenv.py).
"""
import argparse
import collections
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchenv  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLASSES = ["click", "cart", "purchase", "none"]
K = len(CLASSES)
LATENESS_MS = 5000  # labels.allowed_lateness_ms's default
SESSION_GAP_MS = 30 * 60 * 1000
WINDOWS_MS = (5 * 60 * 1000, 30 * 60 * 1000, 2 * 3600 * 1000)
P_MIN = 1e-7  # probabilities are floored here before the log, as nextactd's metrics do
BATCH = 32


# ---- events ---------------------------------------------------------------------------------

class Events:
    """A stream in time order: numpy arrays of user, ts (ms), type (0..2), item, category (int
    codes, -1 = absent) and price (NaN = absent); n events."""

    def __init__(self, user, ts, typ, item, cat, price):
        import numpy as np
        order = np.argsort(np.asarray(ts, dtype=np.int64), kind="stable")
        self.user = np.asarray(user)[order]
        self.ts = np.asarray(ts, dtype=np.int64)[order]
        self.typ = np.asarray(typ, dtype=np.int8)[order]
        self.item = np.asarray(item, dtype=np.int64)[order]
        self.cat = np.asarray(cat, dtype=np.int64)[order]
        self.price = np.asarray(price, dtype=np.float64)[order]
        self.n = len(self.ts)
        self.order = order


def codes(values):
    """Dense integer codes of hashable values; None -> -1."""
    m = {}
    return [-1 if v is None else m.setdefault(v, len(m)) for v in values]


def read_avro(path):
    import datetime
    import fastavro
    u, ts, t, it, ca, pr = [], [], [], [], [], []
    tmap = {c: k for k, c in enumerate(CLASSES[:3])}
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    ms = datetime.timedelta(milliseconds=1)
    with open(path, "rb") as f:
        for r in fastavro.reader(f):
            u.append(r["user_id"])
            v = r["ts"]  # timestamp-millis: a datetime, exact to the ms
            ts.append(v if isinstance(v, int) else (v - epoch) // ms)
            t.append(tmap[r["event_type"]])
            it.append(r.get("item_id"))
            ca.append(r.get("category"))
            p = r.get("price")
            pr.append(float("nan") if p is None else p)
    return Events(codes(u), ts, t, codes(it), codes(ca), pr)


def read_taobao(path):
    """Rows nextactd would refuse (bad numbers, times before 2000, empty ids) are left out."""
    import pandas as pd
    df = pd.read_csv(path, header=None, names=["user", "item", "cat", "behavior", "ts"],
                     dtype=str, keep_default_na=False, on_bad_lines="skip")
    ts = pd.to_numeric(df.ts, errors="coerce")
    ok = (df.behavior.isin(["pv", "cart", "buy"]) & ts.between(946684800, 4102444800) &
          (df.user != ""))
    df, ts = df[ok], ts[ok].astype("int64")
    t = df.behavior.map({"pv": 0, "cart": 1, "buy": 2}).to_numpy()
    return Events(codes(df.user), ts.to_numpy() * 1000, t, codes(df.item), codes(df.cat),
                  [float("nan")] * len(df))


def read_rees46(path):
    """As read_taobao: rows nextactd would refuse are left out."""
    import pandas as pd
    df = pd.read_csv(path, dtype=str, keep_default_na=False, on_bad_lines="skip")
    ts = pd.to_datetime(df.event_time.str.replace(" UTC", "", regex=False), utc=True,
                        format="%Y-%m-%d %H:%M:%S", errors="coerce")
    price = pd.to_numeric(df.price.where(df.price != ""), errors="coerce")
    ok = (df.event_type.isin(["view", "cart", "purchase"]) & ts.notna() & (df.user_id != "") &
          ((df.price == "") | (price >= 0)))
    df, ts, price = df[ok], ts[ok], price[ok]
    t = df.event_type.map({"view": 0, "cart": 1, "purchase": 2}).to_numpy()
    ms = ((ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)).to_numpy()
    return Events(codes(df.user_id), ms, t, codes(df.product_id), codes(df.category_id),
                  price.astype(float).to_numpy())


def write_canonical_csv(ev, path):
    """The events as nextactd reads them with canonical_conf (already sorted)."""
    names = CLASSES[:3]
    with open(path, "w") as f:
        for i in range(ev.n):
            p = ev.price[i]
            f.write("u%d,%d,%s,%s,%s,%s\n" % (
                ev.user[i], ev.ts[i], names[ev.typ[i]],
                "" if ev.item[i] < 0 else "i%d" % ev.item[i],
                "" if ev.cat[i] < 0 else "c%d" % ev.cat[i],
                "" if p != p else repr(float(p))))


CONF_BASE = ('log_level = "warning";\n'
             'kafka: { brokers = "none"; input_topics = ["in"]; output_topic = "out"; };\n'
             'input: { writer_schema = "%s/conf/schemas/event.avsc"; %s};\n'
             'output: { schema = "%s/conf/schemas/prediction.avsc"; };\n'
             'checkpoint: { interval_s = 0; };\nmetrics: { listen = ""; };\n')
CSV_INPUT = ('csv: { columns = ["user_id", "ts", "event_type", "item_id", "category", "price"]; '
             'header = false; timestamp = "epoch_ms"; }; ')


# ---- labels and the schedule ----------------------------------------------------------------

def labels(ev, horizon_ms):
    """y[i] in 0..K-1, or -1 while open at the end; at[i]: the event after which the label is
    known (the user's next event, or the first event that moves the watermark past ts + H)."""
    import numpy as np
    n = ev.n
    y = np.full(n, -1, dtype=np.int64)
    at = np.full(n, -1, dtype=np.int64)
    nxt = np.full(n, -1, dtype=np.int64)
    last = {}
    for i in range(n - 1, -1, -1):
        u = ev.user[i]
        nxt[i] = last.get(u, -1)
        last[u] = i
    # the watermark (largest time so far minus the lateness) passes ts + H at this event
    expire = np.searchsorted(ev.ts, ev.ts + horizon_ms + LATENESS_MS, side="left")
    for i in range(n):
        j, e = nxt[i], expire[i]
        if j >= 0 and (e >= n or j <= e):
            at[i] = j
            y[i] = ev.typ[j] if ev.ts[j] - ev.ts[i] < horizon_ms else K - 1
        elif e < n:
            at[i] = e
            y[i] = K - 1
    return y, at


# ---- features -------------------------------------------------------------------------------

FEATURES = (["is_" + c for c in CLASSES[:3]] +
            ["n_%s_%dm" % (c, w // 60000) for w in WINDOWS_MS for c in CLASSES[:3]] +
            ["since_" + c for c in CLASSES[:3]] +
            ["since_prev", "same_item", "same_cat", "session_pos", "session_min",
             "session_carts", "hour_sin", "hour_cos", "log_price", "has_price"])


def features(ev):
    """(n, F) float32, standardised with the running mean and variance up to each event."""
    import numpy as np
    n, F = ev.n, len(FEATURES)
    X = np.zeros((n, F), dtype=np.float32)
    state = {}
    mean = np.zeros(F)
    m2 = np.zeros(F)
    never = math.log1p(1e6)
    for i in range(n):
        u, ts, t = ev.user[i], int(ev.ts[i]), int(ev.typ[i])
        s = state.get(u)
        if s is None:
            s = state[u] = [collections.deque(), [None] * 3, collections.Counter(),
                            collections.Counter(), None, 0, 0, 0]
        hist, last_t, items, cats, prev, s_start, s_pos, s_carts = s
        row = [0.0] * F
        row[t] = 1.0
        while hist and ts - hist[0][0] >= WINDOWS_MS[-1]:
            hist.popleft()
        hist.append((ts, t))
        for h_ts, h_t in hist:
            age = ts - h_ts
            for w, wl in enumerate(WINDOWS_MS):
                if age < wl:
                    row[3 + 3 * w + h_t] += 1.0
        for c in range(3, 12):
            row[c] = math.log1p(row[c])
        for c in range(3):
            row[12 + c] = never if last_t[c] is None else math.log1p((ts - last_t[c]) / 1000.0)
        row[15] = never if prev is None else math.log1p((ts - prev) / 1000.0)
        it, ca = int(ev.item[i]), int(ev.cat[i])
        row[16] = math.log1p(items[it]) if it >= 0 else 0.0
        row[17] = math.log1p(cats[ca]) if ca >= 0 else 0.0
        if prev is None or ts - prev >= SESSION_GAP_MS:
            s_start, s_pos, s_carts = ts, 0, 0
        s_pos += 1
        s_carts += t == 1
        row[18] = math.log1p(s_pos)
        row[19] = math.log1p((ts - s_start) / 60000.0)
        row[20] = math.log1p(s_carts)
        hour = (ts % 86400000) / 3600000.0
        row[21] = math.sin(2 * math.pi * hour / 24)
        row[22] = math.cos(2 * math.pi * hour / 24)
        p = ev.price[i]
        row[23] = math.log(p) if p == p and p > 0 else 0.0
        row[24] = 1.0 if p == p else 0.0
        last_t[t] = ts
        if it >= 0:
            items[it] += 1
        if ca >= 0:
            cats[ca] += 1
        s[4], s[5], s[6], s[7] = ts, s_start, s_pos, s_carts
        # running standardisation, this event included (Welford)
        x = np.asarray(row)
        d = x - mean
        mean += d / (i + 1)
        m2 += d * (x - mean)
        sd = np.sqrt(m2 / (i + 1)) + 1e-6
        X[i] = (x - mean) / sd
    return X


# ---- peers ----------------------------------------------------------------------------------

class Batched:
    """A peer trained on mini-batches of BATCH examples as their labels resolve. The weights
    change only at a step, so the events seen since the last step are scored together right
    before the next one (and at the end): each with the weights it would have had."""

    def __init__(self, X, P):
        self.X, self.P = X, P
        self.unscored = []
        self.bx, self.by = [], []

    def predict(self, i):
        self.unscored.append(i)

    def learn(self, i, y):
        self.bx.append(i)
        self.by.append(y)
        if len(self.bx) == BATCH:
            self.flush()
            self.step(self.X[self.bx], self.by)
            self.bx, self.by = [], []

    def flush(self):
        if self.unscored:
            self.P[self.unscored] = self.score(self.X[self.unscored])
            self.unscored = []


class TorchMLP(Batched):
    def __init__(self, X, P, seed):
        import torch
        super().__init__(X, P)
        torch.manual_seed(seed)
        self.torch = torch
        F = X.shape[1]
        self.net = torch.nn.Sequential(torch.nn.Linear(F, 64), torch.nn.ReLU(),
                                       torch.nn.Linear(64, 32), torch.nn.ReLU(),
                                       torch.nn.Linear(32, K))
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3)
        self.loss = torch.nn.CrossEntropyLoss()

    def score(self, x):
        with self.torch.no_grad():
            return self.torch.softmax(self.net(self.torch.from_numpy(x)), dim=1).numpy()

    def step(self, x, y):
        self.opt.zero_grad(set_to_none=True)
        self.loss(self.net(self.torch.from_numpy(x)), self.torch.tensor(y)).backward()
        self.opt.step()


class SGDLogReg(Batched):
    def __init__(self, X, P, seed):
        from sklearn.linear_model import SGDClassifier
        super().__init__(X, P)
        # the best of a few schedules on a generator stream (sklearn's default "optimal"
        # rate gave a log loss of 3.3 there: its probabilities swing to 0 and 1)
        self.clf = SGDClassifier(loss="log_loss", alpha=1e-5, learning_rate="invscaling",
                                 eta0=0.05, power_t=0.25, random_state=seed)
        self.fitted = False

    def score(self, x):
        import numpy as np
        if not self.fitted:
            return np.full((len(x), K), 1.0 / K)
        # classes seen so far get their column; an unseen class keeps the floor
        out = np.full((len(x), K), P_MIN)
        out[:, self.clf.classes_] = self.clf.predict_proba(x)
        return out / out.sum(axis=1, keepdims=True)

    def step(self, x, y):
        self.clf.partial_fit(x, y, classes=list(range(K)))
        self.fitted = True


class River:
    """A River classifier, predict_proba_one / learn_one one example at a time."""

    def __init__(self, X, P, model):
        self.X, self.P, self.model = X, P, model
        self.names = FEATURES

    def row(self, i):
        return dict(zip(self.names, self.X[i].tolist()))

    def predict(self, i):
        p = self.model.predict_proba_one(self.row(i))
        v = [max(float(p.get(k, 0.0)), 0.0) for k in range(K)]
        s = sum(v)
        self.P[i] = [x / s for x in v] if s > 0 else [1.0 / K] * K

    def learn(self, i, y):
        self.model.learn_one(self.row(i), int(y))

    def flush(self):
        pass


class Prior:
    def __init__(self, P):
        self.P = P
        self.count = [1.0] * K  # Laplace

    def predict(self, i):
        s = sum(self.count)
        self.P[i] = [c / s for c in self.count]

    def learn(self, i, y):
        self.count[int(y)] += 1.0

    def flush(self):
        pass


def run_peers(ev, X, y, at, seed, tree):
    """Every Python peer over the stream in the delayed order; {name: (n, K) probabilities}."""
    import numpy as np
    from river import compose, linear_model, multiclass, preprocessing
    from river import tree as rtree
    P = {m: np.full((ev.n, K), 1.0 / K) for m in ["torch-mlp", "sgd-logreg", "river-lr",
                                                   "river-hat", "prior"]}
    peers = {"torch-mlp": TorchMLP(X, P["torch-mlp"], seed),
             "sgd-logreg": SGDLogReg(X, P["sgd-logreg"], seed),
             "river-lr": River(X, P["river-lr"], compose.Pipeline(
                 preprocessing.StandardScaler(),
                 multiclass.OneVsRestClassifier(linear_model.LogisticRegression()))),
             "prior": Prior(P["prior"])}
    if tree:
        peers["river-hat"] = River(X, P["river-hat"],
                                   rtree.HoeffdingAdaptiveTreeClassifier(seed=seed))
    else:
        del P["river-hat"]
    due = collections.defaultdict(list)
    for i in np.flatnonzero(at >= 0):
        due[int(at[i])].append(int(i))
    secs = {}
    for name, peer in peers.items():
        t0 = time.process_time()
        for k in range(ev.n):
            peer.predict(k)
            for i in due.get(k, ()):
                peer.learn(i, y[i])
        peer.flush()
        secs[name] = time.process_time() - t0
    return P, secs


# ---- nextactd -------------------------------------------------------------------------------

def run_nextactd(nextactd, conf, inp, horizon_s, seed, work, truth=None):
    out = os.path.join(work, "pred.jsonl")
    summ = os.path.join(work, "summary.json")
    cmd = [nextactd, "replay", "-c", conf, "-X", "labels.horizon_s=%d" % horizon_s, "-X",
           "model.seed=%d" % seed, "--output", out, "--summary", summ]
    if truth:
        cmd += ["--truth", truth]
    t0 = time.time()
    subprocess.run(cmd + [inp], check=True)
    wall = time.time() - t0
    import numpy as np
    rows = []
    with open(out) as f:
        for line in f:
            p = json.loads(line)["probabilities"]
            rows.append([p[c] for c in CLASSES])
    with open(summ) as f:
        s = json.load(f)
    s["wall_seconds"] = wall
    return np.asarray(rows, dtype=np.float64), s  # in input order


def read_truth(path):
    import pandas as pd
    df = pd.read_csv(path)
    return df[["p_" + c for c in CLASSES]].to_numpy(dtype="float64")


# ---- figures --------------------------------------------------------------------------------

def figures(P, y, mask):
    import numpy as np
    from sklearn.metrics import roc_auc_score
    idx = np.flatnonzero(mask & (y >= 0))
    yy = y[idx]
    p = np.clip(P[idx], P_MIN, 1.0)
    p = p / p.sum(axis=1, keepdims=True)
    out = {"logloss": float(-np.mean(np.log(p[np.arange(len(idx)), yy])))}
    aucs = []
    for k, c in enumerate(CLASSES):
        pos = yy == k
        a = float(roc_auc_score(pos, p[:, k])) if 0 < pos.sum() < len(pos) else float("nan")
        out["auc_" + c] = a
        aucs.append(a)
    out["macro_auc"] = float(np.nanmean(aucs))
    return out


def fmt(values, digits=4):
    v = [x for x in values if x == x]
    if not v:
        return "-"
    m = statistics.mean(v)
    sd = statistics.stdev(v) if len(v) > 1 else 0.0
    return "%.*f ±%.*f" % (digits, m, digits, sd)


def table(title, results, methods):
    """results[method] = list over seeds of {"all": figures, "last": figures}."""
    cols = [("all", "logloss"), ("all", "macro_auc"), ("all", "auc_purchase"),
            ("last", "logloss"), ("last", "macro_auc"), ("last", "auc_purchase")]
    print("\n%s" % title)
    print("| method | log loss | macro AUC | purchase AUC | log loss, last 30% | macro AUC, "
          "last 30% | purchase AUC, last 30% |")
    print("| --- |" + " ---: |" * len(cols))
    for m in methods:
        if m not in results:
            continue
        print("| %s | %s |" % (m, " | ".join(fmt([r[s][f] for r in results[m]])
                                             for s, f in cols)))
    # Seeds are different streams as well as different model seeds: a stream's own noise moves
    # every method together, so a method against nextactd is best told apart seed by seed.
    print("\nAgainst nextactd, seed by seed (the method's figure minus nextactd's):")
    print("| method | log loss | macro AUC | purchase AUC | log loss, last 30% | macro AUC, "
          "last 30% | purchase AUC, last 30% |")
    print("| --- |" + " ---: |" * len(cols))
    for m in methods:
        if m not in results or m == "nextactd" or "nextactd" not in results:
            continue
        print("| %s | %s |" % (m, " | ".join(
            fmt([r[s][f] - n[s][f] for r, n in zip(results[m], results["nextactd"])])
            for s, f in cols)))
    print("\nAUC per class, all labelled examples:")
    print("| method | " + " | ".join(CLASSES) + " |")
    print("| --- |" + " ---: |" * K)
    for m in methods:
        if m not in results:
            continue
        print("| %s | %s |" % (m, " | ".join(fmt([r["all"]["auc_" + c] for r in results[m]])
                                             for c in CLASSES)))
    sys.stdout.flush()


# ---- main -----------------------------------------------------------------------------------

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def load():
    return "%.1f %.1f %.1f" % os.getloadavg()


def evaluate(name, ev, horizons, seeds, nextactd, conf, inp, work, truths, tree):
    """One table per horizon. inp: nextactd's input for each seed (a path, or a list), truths:
    the truth file for each seed (or None)."""
    import numpy as np
    for h in horizons:
        results = collections.defaultdict(list)
        notes = []
        for si, seed in enumerate(seeds):
            e = ev[si] if isinstance(ev, list) else ev
            y, at = labels(e, h * 1000)
            X = features(e)
            last = np.arange(e.n) >= int(0.7 * e.n)
            P, secs = run_peers(e, X, y, at, seed, tree)
            src = inp[si] if isinstance(inp, list) else inp
            truth = truths[si] if truths else None
            p, summ = run_nextactd(nextactd, conf, src, h, seed, work, truth)
            P["nextactd"] = p[e.order]
            if truth:
                P["oracle"] = read_truth(truth)[e.order]
            for m, p in P.items():
                results[m].append({"all": figures(p, y, np.ones(e.n, bool)),
                                   "last": figures(p, y, last)})
            notes.append("seed %d: %d events, %d labelled; nextactd --summary log loss %s%s, "
                         "%.1f s wall; CPU seconds of the peers: %s" % (
                             seed, e.n, int((y >= 0).sum()),
                             "-" if summ["logloss"] is None else "%.4f" % summ["logloss"],
                             (" (oracle %.4f, excess %.2f%%)" % (
                                 summ["oracle_logloss"], 100 * summ["excess_logloss"])
                              if truth else ""),
                             summ["wall_seconds"],
                             ", ".join("%s %.1f" % kv for kv in secs.items())))
        with open(os.path.join(work, "results_%s_h%d.json" % (name.split()[0], h)), "w") as f:
            json.dump(results, f)
        table("%s, H = %d s, seeds %s" % (name, h, ",".join(map(str, seeds))), results,
              ["oracle", "nextactd", "torch-mlp", "sgd-logreg", "river-lr", "river-hat",
               "prior"])
        for line in notes:
            print("- " + line)
        print("- load average now: %s" % load())
        sys.stdout.flush()


def main():
    benchenv.ensure()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("nextactd")
    ap.add_argument("--events", type=int, default=200000)
    ap.add_argument("--users", type=int, default=10000)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--horizons", default="1800,300")
    ap.add_argument("--workdir")
    ap.add_argument("--taobao")
    ap.add_argument("--rees46")
    ap.add_argument("--no-tree", action="store_true")
    a = ap.parse_args()
    import torch
    torch.set_num_threads(1)
    seeds = [int(s) for s in a.seeds.split(",")]
    horizons = [int(h) for h in a.horizons.split(",")]
    work = a.workdir or tempfile.mkdtemp(prefix="nx_quality.")
    os.makedirs(work, exist_ok=True)
    nextactd = os.path.abspath(a.nextactd)
    print("bench/quality/quality.py %s" % " ".join(sys.argv[1:]))
    print("CPU: %s, %d online; load average at start: %s; %s" % (
        cpu_model(), os.cpu_count(), load(), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())))
    sys.stdout.flush()

    conf = os.path.join(work, "avro.conf")
    with open(conf, "w") as f:
        f.write(CONF_BASE % (ROOT, "", ROOT))
    csv_conf = os.path.join(work, "csv.conf")
    with open(csv_conf, "w") as f:
        f.write(CONF_BASE % (ROOT, CSV_INPUT, ROOT))

    for h in horizons:
        evs, inps, truths = [], [], []
        for s in seeds:
            avro = os.path.join(work, "gen_h%d_s%d.avro" % (h, s))
            truth = avro.replace(".avro", ".truth.csv")
            if not os.path.exists(truth):
                subprocess.run([nextactd, "gen", "--events", str(a.events), "--users",
                                str(a.users), "--seed", str(s), "--horizon", str(h), "--output",
                                avro, "--truth", truth], check=True, capture_output=True)
            evs.append(read_avro(avro))
            inps.append(avro)
            truths.append(truth)
        evaluate("generator (%d events, %d users)" % (a.events, a.users), evs, [h], seeds,
                 nextactd, conf, inps, work, truths, not a.no_tree)

    for name, path, reader in (("Taobao UserBehavior", a.taobao, read_taobao),
                               ("REES46", a.rees46, read_rees46)):
        if not path:
            continue
        ev = reader(path)
        canon = os.path.join(work, os.path.basename(path) + ".sorted.csv")
        write_canonical_csv(ev, canon)
        evaluate("%s (%s, %d events)" % (name, os.path.basename(path), ev.n), ev, horizons,
                 seeds, nextactd, csv_conf, canon, work, None, not a.no_tree)


if __name__ == "__main__":
    main()
