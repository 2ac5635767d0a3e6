"""The GPT benchmark's matrix products alone, tapegrad against PyTorch (issue 16).

    python benchmarks/gpt_matmuls.py              # one thread, then two
    python benchmarks/gpt_matmuls.py --threads 1 --repeat 50
    python benchmarks/gpt_matmuls.py --gemms      # the backward's GEMMs one by one

Every product of one step of benchmarks/gpt.py (width 128, 4 heads, context
64, batch 16, vocabulary 65), with the operands laid out as the model lays
them out: x @ W for the attention input (128 -> 384), its output projection
(128 -> 128), the MLP (128 -> 512, 512 -> 128) and the output layer
(128 -> 65); attention's q @ k^T and att @ v on permuted views of
(B, T, H, hs) tensors. Each is timed forward only and forward + backward
(the gradients of both operands, as in training), tapegrad and PyTorch
alternating sample by sample so that a change in the machine's load hits
both; the best of N samples is reported, with the ratio tapegrad/PyTorch
(below 1: tapegrad is faster). The header states the load (os.getloadavg):
on a shared machine, compare ratios from one run, not times across runs.

``--gemms`` times, instead, each GEMM that a step's forward and backward
run, alone and without autograd, on the operands' real layouts (the
gradients' products on transposed and permuted views, the weight gradients
folded over the batch), in GFLOP/s: where a fwd+bwd ratio above is poor,
this says which product is slow.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
import tapegrad as tg  # noqa: E402
import torch  # noqa: E402

B, T, C, H, V = 16, 64, 128, 4, 65
HS = C // H
CASES = [  # name, a shape, b shape, kind
    ("x@W qkv 128->384", (B, T, C), (C, 3 * C), "mm"),
    ("x@W proj 128->128", (B, T, C), (C, C), "mm"),
    ("x@W fc 128->512", (B, T, C), (C, 4 * C), "mm"),
    ("x@W fc2 512->128", (B, T, 4 * C), (4 * C, C), "mm"),
    ("x@W head 128->65", (B, T, C), (C, V), "mm"),
    ("q@k^T (16,4,64,32)", (B, T, H, HS), (B, T, H, HS), "qk"),
    ("att@v (16,4,64,64)", (B, H, T, T), (B, T, H, HS), "av"),
]


def operands(lib, a, b, kind):
    """Leaves A, B and a function giving the product's operands from them."""
    if lib == "tg":
        A, Bt = tg.from_numpy(a).requires_grad_(), tg.from_numpy(b).requires_grad_()
    else:
        A, Bt = torch.from_numpy(a).requires_grad_(), torch.from_numpy(b).requires_grad_()

    def views():
        if kind == "qk":
            return A.permute(0, 2, 1, 3), Bt.permute(0, 2, 3, 1)
        if kind == "av":
            return A, Bt.permute(0, 2, 1, 3)
        return A, Bt
    return A, Bt, views


def case_fns(lib, a, b, g, kind):
    A, Bt, views = operands(lib, a, b, kind)
    G = tg.from_numpy(g) if lib == "tg" else torch.from_numpy(g)

    def fwd():
        if lib == "tg":
            with tg.no_grad():
                x, y = views()
                return x @ y
        with torch.no_grad():
            x, y = views()
            return x @ y

    def fwd_bwd():
        A.grad = None
        Bt.grad = None
        x, y = views()
        (x @ y).backward(G)
    return fwd, fwd_bwd


def best_interleaved(fns, repeat):
    """Best time of each function, the functions called in turn each round."""
    for f in fns:
        f()
        f()
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, f in enumerate(fns):
            t0 = time.perf_counter()
            f()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best


def run(threads, repeat):
    tg.set_num_threads(threads)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    print(f"\n{threads} thread(s), best of {repeat}, load average {os.getloadavg()[0]:.2f}")
    print(f"{'product':22s} {'fwd tg':>8s} {'torch':>8s} {'ratio':>6s}   {'fwd+bwd tg':>10s} {'torch':>8s} {'ratio':>6s}")
    tot = np.zeros(4)
    for name, ash, bsh, kind in CASES:
        a = rng.standard_normal(ash).astype(np.float32)
        b = rng.standard_normal(bsh).astype(np.float32)
        with tg.no_grad():
            x, y = operands("tg", a, b, kind)[2]()
            shape = tuple((x @ y).shape)
        g = rng.standard_normal(shape).astype(np.float32)
        tf, tfb = case_fns("tg", a, b, g, kind)
        pf, pfb = case_fns("torch", a, b, g, kind)
        t = best_interleaved([tf, pf, tfb, pfb], repeat)
        tot += t
        ms = [x * 1e3 for x in t]
        print(f"{name:22s} {ms[0]:8.3f} {ms[1]:8.3f} {t[0] / t[1]:6.2f}   {ms[2]:10.3f} {ms[3]:8.3f} {t[2] / t[3]:6.2f}")
    ms = tot * 1e3
    print(f"{'sum':22s} {ms[0]:8.3f} {ms[1]:8.3f} {tot[0] / tot[1]:6.2f}   {ms[2]:10.3f} {ms[3]:8.3f} {tot[2] / tot[3]:6.2f}")


def gemm_cases():
    """(name, M*N*K, tapegrad thunk, torch thunk) for each GEMM of a step,
    with its operands laid out as the step lays them out."""
    rng = np.random.default_rng(1)
    out = []

    def both(shape):
        x = rng.standard_normal(shape).astype(np.float32)
        return tg.from_numpy(x), torch.from_numpy(x)

    x, px = both((B * T, C))                 # a layer's input, batch folded
    g3, pg3 = both((B * T, 3 * C))
    w3, pw3 = both((C, 3 * C))
    x4, px4 = both((B * T, 4 * C))
    w2, pw2 = both((4 * C, C))
    g, pg = both((B * T, C))
    out += [("qkv fwd x@W", B * T * C * 3 * C, lambda: x @ w3, lambda: px @ pw3),
            ("qkv dX = dY@W^T", B * T * C * 3 * C, lambda: g3 @ w3.swapaxes(0, 1),
             lambda: pg3 @ pw3.T),
            ("qkv dW = X^T@dY", B * T * C * 3 * C, lambda: x.swapaxes(0, 1) @ g3,
             lambda: px.T @ pg3),
            ("fc2 fwd x@W", B * T * 4 * C * C, lambda: x4 @ w2, lambda: px4 @ pw2),
            ("fc2 dX = dY@W^T", B * T * 4 * C * C, lambda: g @ w2.swapaxes(0, 1),
             lambda: pg @ pw2.T),
            ("fc2 dW = X^T@dY", B * T * 4 * C * C, lambda: x4.swapaxes(0, 1) @ g,
             lambda: px4.T @ pg)]
    # attention: q, k, v are (B, T, H, hs) slices of a (B, T, 3C) tensor,
    # permuted to (B, H, T, hs); the scores and their gradient (B, H, T, T)
    qkv, pqkv = both((B, T, 3 * C))
    s, ps = both((B, H, T, T))
    y, py = both((B, T, C))                  # the output's gradient, before the permute

    def heads(t, i):
        return t[:, :, i * C:(i + 1) * C].reshape(B, T, H, HS).permute(0, 2, 1, 3)
    q, k, v = (heads(qkv, i) for i in range(3))
    pq, pk, pv = (heads(pqkv, i) for i in range(3))
    dy, pdy = y.reshape(B, T, H, HS).permute(0, 2, 1, 3), py.reshape(B, T, H, HS).permute(0, 2, 1, 3)
    n = B * H * T * T * HS
    out += [("att fwd q@k^T", n, lambda: q @ k.swapaxes(-1, -2), lambda: pq @ pk.transpose(-1, -2)),
            ("att fwd a@v", n, lambda: s @ v, lambda: ps @ pv),
            ("att dq = dS@k", n, lambda: s @ k, lambda: ps @ pk),
            ("att dk^T = dS^T@q", n, lambda: s.swapaxes(-1, -2) @ q,
             lambda: ps.transpose(-1, -2) @ pq),
            ("att da = dO@v^T", n, lambda: dy @ v.swapaxes(-1, -2), lambda: pdy @ pv.transpose(-1, -2)),
            ("att dv = a^T@dO", n, lambda: s.swapaxes(-1, -2) @ dy, lambda: ps.transpose(-1, -2) @ pdy)]
    return out


def run_gemms(threads, repeat):
    tg.set_num_threads(threads)
    torch.set_num_threads(threads)
    print(f"\n{threads} thread(s), GEMMs alone, best of {repeat}, load average {os.getloadavg()[0]:.2f}")
    print(f"{'GEMM':22s} {'tg GF/s':>8s} {'torch':>8s} {'ratio':>6s}")
    with tg.no_grad(), torch.no_grad():
        for name, mnk, f, pf in gemm_cases():
            t = best_interleaved([f, pf], repeat)
            print(f"{name:22s} {2 * mnk / t[0] / 1e9:8.1f} {2 * mnk / t[1] / 1e9:8.1f} {t[0] / t[1]:6.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=None, help="1 or 2 (default: both)")
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--gemms", action="store_true",
                    help="time each GEMM of the forward and backward alone (GFLOP/s)")
    args = ap.parse_args()
    for n in ([args.threads] if args.threads else [1, 2]):
        (run_gemms if args.gemms else run)(n, args.repeat)


if __name__ == "__main__":
    main()
