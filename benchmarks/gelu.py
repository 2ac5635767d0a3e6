"""GELU and erf, tapegrad against PyTorch: forward, and forward + backward,
on the (16, 64, 512) float32 activations of the GPT step (benchmarks/gpt.py),
and GELU on 10^6 float32 elements.

Interleaved: each round times every case once (best of a few calls), and the
table keeps each case's best round, so that load on the machine hits both
libraries alike.  Usage: python benchmarks/gelu.py [--threads 1] [--rounds 15]
"""
import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
import tapegrad as tg  # noqa: E402
import tapegrad.nn.functional as F  # noqa: E402

import torch  # noqa: E402


def best_of(fn, calls):
    fn()
    best = float("inf")
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--calls", type=int, default=5)
    args = ap.parse_args(argv)
    tg.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    x = np.random.default_rng(0).standard_normal((16, 64, 512)).astype(np.float32)
    tx = tg.tensor(x, requires_grad=True)
    px = torch.tensor(x, requires_grad=True)

    def tg_fb(approx):
        def f():
            tx.grad = None
            F.gelu(tx, approximate=approx).sum().backward()
        return f

    def th_fb(approx):
        def f():
            px.grad = None
            torch.nn.functional.gelu(px, approximate=approx).sum().backward()
        return f

    tg_x, th_x = tg.tensor(x), torch.tensor(x)
    m = np.random.default_rng(1).standard_normal(10 ** 6).astype(np.float32)
    tg_m, th_m = tg.tensor(m), torch.tensor(m)
    cases = {
        "gelu forward, 10^6": (lambda: F.gelu(tg_m), lambda: torch.nn.functional.gelu(th_m)),
        "gelu forward": (lambda: F.gelu(tg_x), lambda: torch.nn.functional.gelu(th_x)),
        "gelu forward+backward": (tg_fb("none"), th_fb("none")),
        "gelu tanh forward": (lambda: F.gelu(tg_x, approximate="tanh"),
                              lambda: torch.nn.functional.gelu(th_x, approximate="tanh")),
        "gelu tanh forward+backward": (tg_fb("tanh"), th_fb("tanh")),
        "erf": (lambda: tg.erf(tg_x), lambda: torch.erf(th_x)),
        "sum (the backward's seed, for scale)": (lambda: tg_x.sum(), lambda: th_x.sum()),
    }
    best = {k: [float("inf")] * 2 for k in cases}
    for _ in range(args.rounds):
        for k, fns in cases.items():
            for i, fn in enumerate(fns):
                best[k][i] = min(best[k][i], best_of(fn, args.calls))
    print(f"(16, 64, 512) float32, {args.threads} thread(s), best of {args.rounds} rounds x "
          f"{args.calls} calls; load: {os.getloadavg()[0]:.2f}")
    print(f"{'case':40s} {'tapegrad':>10s} {'torch':>10s} {'ratio':>6s}")
    for k, (a, b) in best.items():
        print(f"{k:40s} {a * 1e3:8.3f}ms {b * 1e3:8.3f}ms {a / b:6.2f}")


if __name__ == "__main__":
    main()
