"""tapegrad benchmarks against NumPy (and PyTorch when installed), one run.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/run.py
    python benchmarks/run.py --quick --json results.json
    python benchmarks/run.py --only overhead          # the call-overhead rows alone
    python benchmarks/run.py --only cnn               # the MNIST CNN's training step, 1 and 2 threads

Each case is timed for every library in the same process (median of
repeats after a warm-up; the CNN step rows: the best of many short samples
taken in interleaved rounds, their medians in the note, see bench_cnn) and
printed as one table with the ratios
tapegrad/NumPy and tapegrad/PyTorch (time ratios: below 1 means tapegrad
is faster). Threads are stated in the header; `--threads N` sets them for
all three libraries (NumPy's BLAS through threadpoolctl when available, else
through OpenBLAS's own setter). After a --threads 1 run, a last section
repeats a few cases on two threads, with tapegrad's matmul timed right after
NumPy's threaded BLAS has run (oversubscription would show there).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

# --threads N must reach NumPy's BLAS before NumPy is imported
for _i, _a in enumerate(sys.argv):
    if _a == "--threads" and _i + 1 < len(sys.argv) or _a.startswith("--threads="):
        _n = _a.split("=", 1)[1] if "=" in _a else sys.argv[_i + 1]
        for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "TAPEGRAD_NUM_THREADS"):
            os.environ[_v] = _n

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
import tapegrad as tg  # noqa: E402

try:
    import torch
except ImportError:  # PyTorch is optional
    torch = None


def samples_of(fn, repeat=7, min_time=0.05):
    """Seconds per call, ``repeat`` samples after a warm-up: each sample
    loops until min_time has passed."""
    fn()
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_time or n >= 1 << 20:
            break
        n *= 2
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - t0) / n)
    return samples


def timeit(fn, repeat=7, min_time=0.05):
    """Median seconds per call (samples_of)."""
    return statistics.median(samples_of(fn, repeat, min_time))


class Table:
    def __init__(self):
        self.rows = []

    def add(self, case, tgt, npt=None, tht=None, unit="s", note=""):
        self.rows.append(dict(case=case, tapegrad=tgt, numpy=npt, torch=tht, unit=unit, note=note))
        r = self.rows[-1]
        print(self.fmt(r), flush=True)

    @staticmethod
    def _t(v, unit):
        if v is None:
            return "-"
        if unit == "s":
            if v < 1e-6:
                return f"{v * 1e9:.0f} ns"
            if v < 1e-3:
                return f"{v * 1e6:.1f} us"
            if v < 1:
                return f"{v * 1e3:.2f} ms"
            return f"{v:.2f} s"
        if unit == "MB":
            return f"{v:.1f} MB"
        return f"{v:.3g}"

    def fmt(self, r):
        def ratio(a, b):
            return f"{a / b:.2f}" if (a is not None and b) else "-"
        return (f"{r['case']:<44} {self._t(r['tapegrad'], r['unit']):>11} {self._t(r['numpy'], r['unit']):>11} "
                f"{self._t(r['torch'], r['unit']):>11} {ratio(r['tapegrad'], r['numpy']):>8} "
                f"{ratio(r['tapegrad'], r['torch']):>8}  {r['note']}")

    @staticmethod
    def header():
        return (f"{'case':<44} {'tapegrad':>11} {'numpy':>11} {'torch':>11} {'tg/np':>8} "
                f"{'tg/torch':>8}")


def set_threads(n):
    """The same thread count for all three libraries (NumPy: its BLAS)."""
    tg.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(n)
    except ImportError:
        from tapegrad._config import _set_blas_threads
        _set_blas_threads(n)


def numpy_threads():
    pools = tg.config()["blas_pools"]
    return ",".join(str(p["num_threads"]) for p in pools) if pools else "?"


# ---------------------------------------------------------------------------
# cases
# ---------------------------------------------------------------------------

def bench_matmul(tab, sizes, dtype):
    for n in sizes:
        a = np.random.default_rng(0).standard_normal((n, n)).astype(dtype)
        b = np.random.default_rng(1).standard_normal((n, n)).astype(dtype)
        ta, tb = tg.from_numpy(a), tg.from_numpy(b)
        t_tg = timeit(lambda: ta @ tb)
        t_np = timeit(lambda: a @ b)
        t_th = None
        if torch is not None:
            xa, xb = torch.from_numpy(a), torch.from_numpy(b)
            t_th = timeit(lambda: xa @ xb)
        gf = 2 * n ** 3 / t_tg / 1e9
        peak = peak_gflops_per_core()[0] / (1 if np.dtype(dtype) == np.float32 else 2)
        tab.add(f"matmul {n}x{n} {np.dtype(dtype).name}", t_tg, t_np, t_th, note=f"{gf:.1f} GFLOP/s, {gf / peak:.0%} of peak")


def bench_mlp_shapes(tab, dtype):
    rng = np.random.default_rng(0)
    shapes = [("32x784 @ 784x128", (32, 784), (784, 128), False, False),
              ("dW: 784x32 @ 32x128 (x^T dY)", (32, 784), (32, 128), True, False),
              ("dX: 32x128 @ 128x784 (dY W^T)", (32, 128), (784, 128), False, True),
              # one sample (predicting one digit, sampling one character):
              # nn.Linear's x @ W^T and its input gradient dY @ W
              ("one sample: 1x784 @ W^T (W 128x784)", (1, 784), (128, 784), False, True),
              ("one sample dX: 1x128 @ 128x784", (1, 128), (128, 784), False, False)]
    for name, sa, sb, ta_, tb_ in shapes:
        a = rng.standard_normal(sa).astype(dtype)
        b = rng.standard_normal(sb).astype(dtype)
        A, B = tg.from_numpy(a), tg.from_numpy(b)
        fa = (lambda: A.T @ B) if ta_ else (lambda: A @ B.T) if tb_ else (lambda: A @ B)
        na = (lambda: a.T @ b) if ta_ else (lambda: a @ b.T) if tb_ else (lambda: a @ b)
        t_th = None
        if torch is not None:
            xa, xb = torch.from_numpy(a), torch.from_numpy(b)
            fx = (lambda: xa.T @ xb) if ta_ else (lambda: xa @ xb.T) if tb_ else (lambda: xa @ xb)
            t_th = timeit(fx)
        tab.add(f"MLP {name} {np.dtype(dtype).name}", timeit(fa), timeit(na), t_th)


def bench_elementwise(tab, sizes):
    rng = np.random.default_rng(0)
    for n in sizes:
        a = rng.standard_normal(n).astype(np.float32)
        b = rng.standard_normal(n).astype(np.float32)
        ta, tb = tg.from_numpy(a), tg.from_numpy(b)
        xa = torch.from_numpy(a) if torch is not None else None
        xb = torch.from_numpy(b) if torch is not None else None
        for name, ft, fn, fx in [("add", lambda: ta + tb, lambda: a + b, lambda: xa + xb),
                                 ("mul", lambda: ta * tb, lambda: a * b, lambda: xa * xb),
                                 ("exp", lambda: ta.exp(), lambda: np.exp(a), lambda: xa.exp()),
                                 ("tanh", lambda: ta.tanh(), lambda: np.tanh(a), lambda: xa.tanh()),
                                 # NumPy has neither: erf and GELU are tapegrad vs PyTorch
                                 ("erf", lambda: tg.erf(ta), None, lambda: torch.erf(xa)),
                                 ("gelu", lambda: tg.nn.functional.gelu(ta), None,
                                  lambda: torch.nn.functional.gelu(xa))]:
            t = timeit(ft)
            tab.add(f"{name} {n:.0e} float32", t, timeit(fn) if fn is not None else None,
                    timeit(fx) if torch is not None else None,
                    note=f"{n * 4 * (3 if name in ('add', 'mul') else 2) / t / 1e9:.1f} GB/s")


def bench_reductions(tab):
    a = np.random.default_rng(0).standard_normal((1000, 1000)).astype(np.float32)
    ta = tg.from_numpy(a)
    xa = torch.from_numpy(a) if torch is not None else None
    for ax in (0, 1, None):
        tab.add(f"sum 1000x1000 axis={ax}", timeit(lambda: ta.sum(axis=ax)), timeit(lambda: a.sum(axis=ax)),
                timeit(lambda: xa.sum(dim=ax) if ax is not None else xa.sum()) if torch is not None else None)
    tab.add("max 1000x1000 axis=0", timeit(lambda: ta.max(axis=0)), timeit(lambda: a.max(axis=0)),
            timeit(lambda: xa.amax(dim=0)) if torch is not None else None)
    # per-channel sums of a CNN activation: BatchNorm's statistics, the
    # gradient of a bias broadcast over (N, C, H, W)
    c = np.random.default_rng(1).standard_normal((32, 32, 14, 14)).astype(np.float32)
    tc = tg.from_numpy(c)
    xc = torch.from_numpy(c) if torch is not None else None
    tab.add("sum 32x32x14x14 axis=(0,2,3)", timeit(lambda: tc.sum(axis=(0, 2, 3))),
            timeit(lambda: c.sum(axis=(0, 2, 3))),
            timeit(lambda: xc.sum(dim=(0, 2, 3))) if torch is not None else None)


def bench_overhead(tab):
    a, b = np.ones(1, np.float32), np.ones(1, np.float32)
    ta, tb = tg.from_numpy(a), tg.from_numpy(b)
    t_th = None
    if torch is not None:
        xa, xb = torch.ones(1), torch.ones(1)
        t_th = timeit(lambda: xa + xb)
    tab.add("one-element add (no grad)", timeit(lambda: ta + tb), timeit(lambda: a + b), t_th)
    ra = tg.ones(1, requires_grad=True)
    rb = tg.ones(1, requires_grad=True)
    tx = torch.ones(1, requires_grad=True) if torch is not None else None
    tab.add("one-element add (recording)", timeit(lambda: ra + rb), timeit(lambda: a + b),
            timeit(lambda: tx + tx) if torch is not None else None, note="numpy column: no recording")
    for n in (10 ** 3, 10 ** 8):  # the sizes: constant time means no copy
        arr = np.ones(n, np.float32)
        t = tg.from_numpy(arr)
        tab.add(f"from_numpy n={n:.0e}", timeit(lambda: tg.from_numpy(arr)), None,
                timeit(lambda: torch.from_numpy(arr)) if torch is not None else None)
        tab.add(f"t.numpy() n={n:.0e}", timeit(lambda: t.numpy()), None,
                timeit(lambda x=torch.from_numpy(arr): x.numpy()) if torch is not None else None)


def numpy_mlp(batch, seed=0):
    """A hand-written NumPy MLP 784-128-10 with softmax cross-entropy and Adam."""
    rng = np.random.default_rng(seed)
    k1, k2 = 1 / np.sqrt(784), 1 / np.sqrt(128)
    P = {"W1": rng.uniform(-k1, k1, (784, 128)).astype(np.float32), "b1": np.zeros(128, np.float32),
         "W2": rng.uniform(-k2, k2, (128, 10)).astype(np.float32), "b2": np.zeros(10, np.float32)}
    M = {k: np.zeros_like(v) for k, v in P.items()}
    V = {k: np.zeros_like(v) for k, v in P.items()}
    state = {"t": 0}

    def step(x, y):
        h = np.maximum(x @ P["W1"] + P["b1"], 0)
        z = h @ P["W2"] + P["b2"]
        z = z - z.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        loss = -np.log(p[np.arange(len(y)), y]).mean()
        dz = p
        dz[np.arange(len(y)), y] -= 1
        dz /= len(y)
        G = {"W2": h.T @ dz, "b2": dz.sum(0)}
        dh = dz @ P["W2"].T * (h > 0)
        G["W1"], G["b1"] = x.T @ dh, dh.sum(0)
        state["t"] += 1
        t = state["t"]
        for k in P:
            M[k] = 0.9 * M[k] + 0.1 * G[k]
            V[k] = 0.999 * V[k] + 0.001 * G[k] ** 2
            P[k] -= 1e-3 * (M[k] / (1 - 0.9 ** t)) / (np.sqrt(V[k] / (1 - 0.999 ** t)) + 1e-8)
        return loss
    return step


def tg_mlp():
    tg.manual_seed(0)
    model = tg.nn.Sequential(tg.nn.Linear(784, 128), tg.nn.ReLU(), tg.nn.Linear(128, 10))
    opt = tg.optim.Adam(model.parameters(), lr=1e-3)

    def step(x, y):
        opt.zero_grad()
        loss = tg.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return step


def torch_mlp():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return step


def mnist_training_set(data):
    """(x (60000, 784) float32 in [0, 1], y (60000,) int64): the training
    images and labels of ``tg.data.mnist.load_data``'s result, as every
    benchmark here feeds them (the MLP rows, and the CNN rows through
    ``cnn.batch``)."""
    (xtr, ytr), _ = data
    return (xtr.reshape(-1, 784) / 255.0).astype(np.float32), ytr.astype(np.int64)


def bench_training(tab, data, quick):
    x, y = mnist_training_set(data)
    for batch in (32, 256):
        xb, yb = x[:batch], y[:batch]
        s_tg, s_np = tg_mlp(), numpy_mlp(batch)
        txb, tyb = tg.from_numpy(xb), tg.from_numpy(yb)
        t_th = None
        if torch is not None:
            s_th = torch_mlp()
            xx, yy = torch.from_numpy(xb), torch.from_numpy(yb)
            t_th = timeit(lambda: s_th(xx, yy))
        tab.add(f"MLP 784-128-10 train step, batch {batch}", timeit(lambda: s_tg(txb, tyb)),
                timeit(lambda: s_np(xb, yb)), t_th)
    # one epoch, batch 32, data in memory, the same loop style for each library
    n = 12000 if quick else len(x)
    order = np.random.default_rng(0).permutation(n)
    batches = [order[i:i + 32] for i in range(0, n, 32)]

    def epoch(step, conv):
        t0 = time.perf_counter()
        for idx in batches:
            step(*conv(x[idx], y[idx]))
        return time.perf_counter() - t0
    s_tg, s_np = tg_mlp(), numpy_mlp(32)
    t_tg = min(epoch(s_tg, lambda a, b: (tg.from_numpy(a), tg.from_numpy(b))) for _ in range(2))
    t_np = min(epoch(s_np, lambda a, b: (a, b)) for _ in range(2))
    t_th = None
    if torch is not None:
        s_th = torch_mlp()
        t_th = min(epoch(s_th, lambda a, b: (torch.from_numpy(a), torch.from_numpy(b))) for _ in range(2))
    tab.add(f"MNIST epoch MLP Adam batch 32 ({n} images)", t_tg, t_np, t_th)


def bench_conv(tab):
    if not hasattr(tg.nn.functional, "conv2d"):
        return
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
    w1 = rng.standard_normal((6, 1, 5, 5)).astype(np.float32) * 0.1
    w2 = rng.standard_normal((16, 6, 5, 5)).astype(np.float32) * 0.1
    F = tg.nn.functional

    def f_tg():
        tw1 = tg.from_numpy(w1, requires_grad=True)
        tw2 = tg.from_numpy(w2, requires_grad=True)
        h = F.max_pool2d(F.conv2d(tg.from_numpy(x), tw1).relu(), 2)
        F.conv2d(h, tw2).relu().sum().backward()
    t_th = None
    if torch is not None:
        def f_th():
            tw1 = torch.from_numpy(w1).requires_grad_()
            tw2 = torch.from_numpy(w2).requires_grad_()
            h = torch.nn.functional.max_pool2d(torch.nn.functional.conv2d(torch.from_numpy(x), tw1).relu(), 2)
            torch.nn.functional.conv2d(h, tw2).relu().sum().backward()
        t_th = timeit(f_th, repeat=5)
    tab.add("LeNet conv+pool fwd+bwd, batch 64", timeit(f_tg, repeat=5), None, t_th)

    # a CIFAR/VGG-style 3x3 layer, forward and backward (Winograd F(4x4, 3x3)
    # by default); the GFLOP/s note counts the direct convolution's work
    x3 = rng.standard_normal((16, 64, 32, 32)).astype(np.float32)
    w3 = (rng.standard_normal((64, 64, 3, 3)) / 24).astype(np.float32)
    g3 = rng.standard_normal((16, 64, 32, 32)).astype(np.float32)
    tx3, tw3, tg3 = tg.from_numpy(x3), tg.from_numpy(w3), tg.from_numpy(g3)

    def c3_tg():
        xa, wa = tx3.detach().requires_grad_(), tw3.detach().requires_grad_()
        F.conv2d(xa, wa, padding=1).backward(tg3)
    t_th = None
    if torch is not None:
        hx3, hw3, hg3 = torch.from_numpy(x3), torch.from_numpy(w3), torch.from_numpy(g3)

        def c3_th():
            xa, wa = hx3.detach().requires_grad_(), hw3.detach().requires_grad_()
            torch.nn.functional.conv2d(xa, wa, padding=1).backward(hg3)
        t_th = timeit(c3_th, repeat=5)
    t = timeit(c3_tg, repeat=5)
    flop = 3 * 2 * 16 * 64 * 64 * 9 * 32 * 32
    tab.add("conv2d 3x3 fwd+bwd, 16x64x32x32 -> 64", t, None, t_th,
            note=f"{flop / t / 1e9:.1f} GFLOP/s of direct-convolution work")

    # BatchNorm2d in training, forward and backward, on the CNN's second
    # activation (built from ops: its statistics are sums over (0, 2, 3))
    a = rng.standard_normal((32, 32, 14, 14)).astype(np.float32)
    g = rng.standard_normal((32, 32, 14, 14)).astype(np.float32)
    bn, tga, tgg = tg.nn.BatchNorm2d(32), tg.from_numpy(a), tg.from_numpy(g)

    def bn_tg():
        xa = tga.detach().requires_grad_()
        bn(xa).backward(tgg)
    t_th = None
    if torch is not None:
        tbn, tha, thg = torch.nn.BatchNorm2d(32), torch.from_numpy(a), torch.from_numpy(g)

        def bn_th():
            tbn(tha.detach().requires_grad_()).backward(thg)
        t_th = timeit(bn_th)
    tab.add("BatchNorm2d fwd+bwd, 32x32x14x14", timeit(bn_tg), None, t_th)


# The float32 FMA peak of one core (GFLOP/s), the reference of the "fraction
# of peak" notes (issue 16): measured on this machine by benchmarks/fma_peak.c
# (register-only FMA chains) when a C compiler is at hand, else the 88 GFLOP/s
# measured the same way on the project's AVX2 CI machine kind.
PEAK_FALLBACK_GFLOPS = 88.0
_peak = None
_peak_exe = None


def _run_fma_peak():
    """One run of fma_peak (GFLOP/s), or None without a compiler or when it
    fails; the program is built once per run of this script."""
    global _peak_exe
    import atexit
    import shutil
    import subprocess
    import tempfile
    if _peak_exe is None:
        _peak_exe = ""
        cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
        if cc:
            d = tempfile.mkdtemp()
            atexit.register(shutil.rmtree, d, True)
            exe = os.path.join(d, "fma_peak")
            src = str(Path(__file__).resolve().parent / "fma_peak.c")
            try:
                subprocess.run([cc, "-O2", src, "-o", exe], check=True, capture_output=True)
                _peak_exe = exe
            except (subprocess.CalledProcessError, OSError):
                pass
    if not _peak_exe:
        return None
    try:
        out = subprocess.run([_peak_exe], check=True, capture_output=True, text=True)
        return float(out.stdout)
    except (subprocess.CalledProcessError, OSError, ValueError):
        return None


def peak_gflops_per_core(remeasure=False):
    """(GFLOP/s, "measured here" | "assumed") -- measured at the first call,
    and again when ``remeasure`` (the CNN rows ask, a minute or two later),
    keeping the best: on a host that slows the cores for seconds at a time
    a single measurement can fall in a slow stretch, and the rows measured
    in a quicker one then showed more than 100 % of "peak" (a run of
    session 17: 101 GFLOP/s measured, 117 the run before)."""
    global _peak
    if _peak is None or (remeasure and _peak[1] == "measured here"):
        g = _run_fma_peak()
        if g is not None and (_peak is None or g > _peak[0]):
            _peak = (g, "measured here")
        elif _peak is None:
            _peak = (PEAK_FALLBACK_GFLOPS, "assumed")
    return _peak


def bench_cnn(tab, quick, data=None):
    """One training step of the MNIST example's CNN (benchmarks/cnn.py:
    conv 5x5 1->16, pool, conv 5x5 16->32, pool, fc 128, fc 10, Adam), batch
    32 and 128, tapegrad and PyTorch from the same weights, on one and on
    two threads for both libraries. The four configurations are timed
    interleaved, round after round, so that a change in the machine's load
    affects them alike; each round takes a few short samples of each (a few
    steps, at least 10 ms), and a row gives the best sample of all rounds;
    tapegrad's 2-thread speed-up over its own 1 thread, and PyTorch's, come
    from the same rounds, best against best and median against median.

    Why the best short sample: on a shared host a core loses a good part of
    its speed for stretches of 0.1 s to seconds (measured here: the same
    one-thread step at 5.1-5.4 ms, then 7.3 or 10 ms for a second or more,
    inside one process), and a two-thread step is slowed when either core
    is, so the longer the sample the more of the host's load it measures
    and the more it hurts the two-thread figures. The best of many short
    samples is the step's time on quiet cores, the quantity the other rows'
    medians estimate when the host is quiet; the medians are printed beside
    it so the spread is in the same line."""
    if not hasattr(tg.nn.functional, "conv2d"):
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import cnn
    threads = tg.get_num_threads()
    th_threads = torch.get_num_threads() if torch is not None else None
    weights = cnn.init_weights(0)
    peak_gflops_per_core(remeasure=True)
    rounds = 4 if quick else 12
    for n in (32, 128):
        x, y = cnn.batch(n, train=None if data is None else mnist_training_set(data))
        s_tg, _ = cnn.tapegrad_step(weights)
        tx, ty = tg.from_numpy(x), tg.from_numpy(y)
        cases = {}
        for k in (1, 2):
            cases[("tg", k)] = (lambda k=k: tg.set_num_threads(k), lambda: s_tg(tx, ty))
        if torch is not None:
            s_th, _ = cnn.torch_step(weights)
            xx, yy = torch.tensor(x), torch.tensor(y)
            for k in (1, 2):
                cases[("torch", k)] = (lambda k=k: torch.set_num_threads(k), lambda: s_th(xx, yy))
        samples = {c: [] for c in cases}
        for _ in range(rounds):
            for c, (setup, fn) in cases.items():
                setup()
                samples[c] += samples_of(fn, repeat=5, min_time=0.01)
        best = {c: min(v) for c, v in samples.items()}
        med = {c: statistics.median(v) for c, v in samples.items()}
        flop = cnn.FLOPS_PER_IMAGE * n
        for k in (1, 2):
            t = best[("tg", k)]
            gf = flop / t / 1e9
            peak, how = peak_gflops_per_core()
            note = f"{gf:.1f} GFLOP/s, {gf / (peak * k):.0%} of {k}x{peak:.0f} ({how})"
            if k == 2:
                def up(lib):
                    return (f"{best[(lib, 1)] / best[(lib, 2)]:.2f}x "
                            f"(medians {med[(lib, 1)] / med[(lib, 2)]:.2f}x)")
                note += f"; speed-up over 1 thread: tapegrad {up('tg')}"
                if torch is not None:
                    note += f", torch {up('torch')}"
            else:
                note += f"; median {med[('tg', 1)] * 1e3:.2f} ms"
                if torch is not None:
                    note += f", torch {med[('torch', 1)] * 1e3:.2f} ms"
            tab.add(f"CNN train step, batch {n}, Adam [{k} thread{'s' if k > 1 else ''}]", t, None,
                    best.get(("torch", k)), note=note)
    tg.set_num_threads(threads)
    if torch is not None:
        torch.set_num_threads(th_threads)


def bench_gpt(tab, quick, data_dir=None):
    """One training step of the small GPT of benchmarks/gpt.py (2 blocks, 4
    heads, width 128, context 64, batch 16, AdamW) on tinyshakespeare, the
    same model and weights in tapegrad and PyTorch."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import gpt
    cfg = gpt.Config()
    weights = gpt.init_weights(cfg)
    try:
        corpus = tg.data.text.tinyshakespeare(data_dir)
    except tg.data.text.TextDataError as exc:
        print(f"(transformer step skipped: {str(exc).splitlines()[0]})")
        return
    tokens = tg.data.text.Vocabulary(corpus).encode(corpus)
    x, y = gpt.batch(tokens, cfg, np.random.default_rng(0))
    step, _ = gpt.tapegrad_step(weights, cfg)
    tx, ty = tg.from_numpy(x), tg.from_numpy(y)
    t_th = None
    if torch is not None:
        tstep, _ = gpt.torch_step(weights, cfg)
        xx, yy = torch.tensor(x), torch.tensor(y)  # x, y are locked by tg.from_numpy
        t_th = timeit(lambda: tstep(xx, yy), repeat=3 if quick else 7)
    tab.add(f"GPT step ({cfg.n_layer}x{cfg.n_head}h, C{cfg.width}, T{cfg.context}, B{cfg.batch}), AdamW",
            timeit(lambda: step(tx, ty), repeat=3 if quick else 7), None, t_th)


def bench_two_threads(tab, quick):
    """A few cases again on two threads for every library, and the test of
    oversubscription: tapegrad's threaded matmul right after NumPy's threaded
    BLAS has run (whose workers keep spinning for a while), and the reverse.
    tapegrad is timed first, before NumPy's and PyTorch's pools are given a
    second thread, so that its own scaling is measured on quiet cores."""
    rng = np.random.default_rng(0)
    n = 512 if quick else 1024
    m = 10 ** 6 if quick else 10 ** 7
    a = rng.standard_normal((n, n)).astype(np.float32)
    v = rng.standard_normal(m).astype(np.float32)
    big = rng.standard_normal((4000, 4000)).astype(np.float32)
    ta, tv, tb = tg.from_numpy(a), tg.from_numpy(v), tg.from_numpy(big)
    # tapegrad's own scaling: one and two threads interleaved, so that a
    # change in the machine's load affects both figures alike
    one, two = [], []
    for _ in range(5):
        tg.set_num_threads(1)
        one.append(timeit(lambda: ta @ ta, repeat=3))
        tg.set_num_threads(2)
        two.append(timeit(lambda: ta @ ta, repeat=3))
    t1, t2 = statistics.median(one), statistics.median(two)
    tg.set_num_threads(2)
    ours = {"mm": t2, "exp": timeit(lambda: tv.exp()),
            "tanh": timeit(lambda: tv.tanh()), 0: timeit(lambda: tb.sum(axis=0)),
            1: timeit(lambda: tb.sum(axis=1))}
    set_threads(2)
    xa = torch.from_numpy(a) if torch is not None else None
    xv = torch.from_numpy(v) if torch is not None else None
    xb = torch.from_numpy(big) if torch is not None else None
    th = (lambda f: timeit(f) if torch is not None else None)
    tab.add(f"matmul {n}x{n} float32 [2 threads]", ours["mm"], timeit(lambda: a @ a),
            th(lambda: xa @ xa), note=f"{2 * n ** 3 / ours['mm'] / 1e9:.1f} GFLOP/s, "
                                      f"{2 * n ** 3 / ours['mm'] / 1e9 / (2 * peak_gflops_per_core()[0]):.0%} of 2x peak, "
                                      f"{t1 / t2:.2f}x tapegrad on 1 thread (interleaved)")
    s = rng.standard_normal((256, 256)).astype(np.float32)
    ts = tg.from_numpy(s)
    t_mixed = timeit(lambda: (s @ s, ta @ ta)) - timeit(lambda: s @ s)
    t_np_mixed = timeit(lambda: (ts @ ts, a @ a)) - timeit(lambda: ts @ ts)
    tab.add(f"matmul {n} after the other's 256 matmul [2 thr]", t_mixed, t_np_mixed, None,
            note=f"tapegrad {t_mixed / ours['mm']:.2f}x its time alone")
    for name in ("exp", "tanh"):
        tab.add(f"{name} {m:.0e} float32 [2 threads]", ours[name], timeit(lambda: getattr(np, name)(v)),
                th(lambda: getattr(xv, name)()))
    for ax in (0, 1):
        tab.add(f"sum 4000x4000 axis={ax} [2 threads]", ours[ax], timeit(lambda: big.sum(axis=ax)),
                th(lambda: xb.sum(dim=ax)))


def bench_memory(tab, data):
    (xtr, ytr), _ = data
    x = (xtr.reshape(-1, 784)[:6400] / 255.0).astype(np.float32)
    y = ytr[:6400].astype(np.int64)
    step = tg_mlp()
    rss = []
    for ep in range(3):
        for s in range(0, len(x), 32):
            step(tg.from_numpy(x[s:s + 32]), tg.from_numpy(y[s:s + 32]))
        gc.collect()
        rss.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    stats = tg.memory_stats()
    tab.add("training run: peak tensor memory", stats["peak_bytes"] / 2 ** 20, None, None, unit="MB",
            note=f"max RSS after epochs: {', '.join(f'{r:.0f}' for r in rss)} MB")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer sizes, a partial epoch")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", default=None, help="write the results to this file")
    ap.add_argument("--data", default=None, help="MNIST directory (default: tg.data.mnist lookup)")
    ap.add_argument("--only", default=None,
                    help="run only these sections, comma-separated: matmul, mlp, elementwise, "
                         "reductions, overhead, training, conv, cnn, gpt, memory, threads (e.g. --only overhead "
                         "for the call-overhead rows)")
    args = ap.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None

    def want(section):
        return only is None or section in only
    if args.threads:
        set_threads(args.threads)
    env = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    print(f"tapegrad {tg.__version__} ({tg._C.gemm_isa()} matmul kernel), NumPy {np.__version__}"
          + (f", PyTorch {torch.__version__}" if torch is not None else ", PyTorch not installed"))
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; threads: tapegrad "
          f"{tg.get_num_threads()}, numpy BLAS {numpy_threads()}"
          + (f", torch {torch.get_num_threads()}" if torch is not None else "")
          + f"; vector math {tg._C.vmath_isa()}"
          + (f"; note: {env} are set and slow NumPy" if any(env.values()) else ""))
    peak, how = peak_gflops_per_core()
    print(f"float32 FMA peak of one core: {peak:.1f} GFLOP/s ({how}, benchmarks/fma_peak.c)")
    tab = Table()
    print(Table.header())
    print("-" * 100)
    sizes = [64, 256, 512] if args.quick else [64, 256, 512, 1024, 2048]
    if want("matmul"):
        bench_matmul(tab, sizes, np.float32)
        bench_matmul(tab, sizes[:4], np.float64)
    if want("mlp"):
        bench_mlp_shapes(tab, np.float32)
        bench_mlp_shapes(tab, np.float64)
    if want("elementwise"):
        bench_elementwise(tab, [10 ** 6] if args.quick else [10 ** 6, 10 ** 7])
    if want("reductions"):
        bench_reductions(tab)
    if want("overhead"):
        bench_overhead(tab)
    data = (tg.data.mnist.load_data(args.data)
            if want("training") or want("memory") or want("cnn") else None)
    if want("training"):
        bench_training(tab, data, args.quick)
    if want("conv"):
        bench_conv(tab)
    if want("cnn"):
        bench_cnn(tab, args.quick, data)
    if want("gpt"):
        bench_gpt(tab, args.quick, os.path.dirname(args.data) if args.data else None)
    if want("memory"):
        bench_memory(tab, data)
    if want("threads") and (os.cpu_count() or 1) >= 2 and tg.get_num_threads() == 1:
        print("-" * 100)
        bench_two_threads(tab, args.quick)
    if args.json:
        Path(args.json).write_text(json.dumps(tab.rows, indent=1))
    return tab


if __name__ == "__main__":
    main()
