"""The MNIST example's CNN, the same in tapegrad and in PyTorch, for the CNN
training-step rows of benchmarks/run.py (and the test that keeps the two
equal).

    conv 5x5 1->16 (padding 2), ReLU, max-pool 2 -> 16 x 14 x 14
    conv 5x5 16->32 (padding 2), ReLU, max-pool 2 -> 32 x 7 x 7
    flatten, linear 1568->128, ReLU, linear 128->10, cross-entropy, Adam

The tapegrad model is ``tapegrad.examples.mnist.build_model("cnn")``, the
model a student trains with ``--model cnn``; the PyTorch model is the same
layers, loaded with the tapegrad model's initial weights, so a step can be
compared number for number. One training step is zero_grad, forward, loss,
backward and optimizer step; ``FLOPS_PER_IMAGE`` is its multiply-add count
times two (the convolutions' and linear layers' forward, input-gradient and
weight-gradient products; the first convolution's input gradient is not
computed, the image needs none).
"""
from __future__ import annotations

import numpy as np


def _flops_per_image():
    conv1 = 16 * 1 * 25 * 28 * 28      # multiply-adds of conv1's forward product
    conv2 = 32 * 16 * 25 * 14 * 14
    fc = 1568 * 128 + 128 * 10
    # forward + weight gradient for all; input gradient for all but conv1
    return 2 * (2 * conv1 + 3 * conv2 + 3 * fc)


FLOPS_PER_IMAGE = _flops_per_image()


def init_weights(seed: int = 0, dtype=np.float32) -> dict:
    """The initial weights of the tapegrad model (PyTorch's default
    initialisation, drawn by tapegrad from ``seed``), as NumPy arrays keyed
    by the names of ``state_dict``."""
    import tapegrad as tg
    from tapegrad.examples.mnist import build_model
    tg.manual_seed(seed)
    model = build_model("cnn", 128)
    return {k: np.asarray(v.numpy(), dtype=dtype).copy() for k, v in model.state_dict().items()}


def tapegrad_step(weights: dict, lr: float = 1e-3):
    """(step(x, y) -> loss tensor, model): one Adam training step of the
    tapegrad CNN started from ``weights``."""
    import tapegrad as tg
    from tapegrad.examples.mnist import build_model
    model = build_model("cnn", 128)
    model.load_state_dict({k: tg.from_numpy(v.copy()) for k, v in weights.items()})
    opt = tg.optim.Adam(model.parameters(), lr=lr)

    def step(x, y):
        opt.zero_grad()
        loss = tg.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return step, model


def torch_model(weights: dict):
    """The same layers in PyTorch, loaded with ``weights`` (tapegrad's
    Linear keeps its weight (out, in) as PyTorch does: no transposes)."""
    import torch
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))
    dtype = next(iter(weights.values())).dtype
    model = model.to(torch.float64 if dtype == np.float64 else torch.float32)
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in weights.items()})
    return model


def torch_step(weights: dict, lr: float = 1e-3):
    """(step(x, y) -> loss tensor, model), PyTorch's Adam."""
    import torch
    model = torch_model(weights)
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return step, model


def batch(n: int, seed: int = 0, train=None):
    """(x (n, 1, 28, 28) float32 in [0, 1], y (n,) int64): the first n MNIST
    training images when ``train`` is given (the (x (N, 784) float32, y
    int64) pair of ``run.mnist_training_set``, run.py's one MNIST loader),
    else random images and labels of the same shape."""
    if train is not None:
        x, y = train
        return np.ascontiguousarray(x[:n].reshape(n, 1, 28, 28)), y[:n].copy()
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, n).astype(np.int64)


def _others_busy(dt: float = 0.1) -> float:
    """Cores used by other processes over the next ``dt`` seconds (Linux
    /proc/stat: user, nice, system, irq, softirq, steal, minus this process's
    own time).  Niced jobs count too: in another session's cgroup they take
    their cgroup's share whatever their nice value.  0.0 where /proc is
    missing."""
    import os
    import time

    def busy():
        v = list(map(int, open("/proc/stat").readline().split()[1:]))
        return v[0] + v[1] + v[2] + v[5] + v[6] + v[7]

    try:
        b0, o0 = busy(), os.times()
        time.sleep(dt)
        b1, o1 = busy(), os.times()
    except OSError:
        return 0.0
    own = (o1.user + o1.system) - (o0.user + o0.system)
    return max(0.0, ((b1 - b0) / os.sysconf("SC_CLK_TCK") - own) / dt)


def main(argv=None):
    """Interleaved timing of the CNN step for a loaded machine:
    ``python benchmarks/cnn.py --batch 32 --threads 1,2 --rounds 30 --gate 0.3``.
    Each round times every configuration (tapegrad at each thread count,
    PyTorch with --torch) back to back, best of 3 steps, so a change in load
    hits them alike; with --gate a round runs only while other processes
    use less than that many cores.  Prints per configuration
    the best and median step (wall clock and the calling thread's CPU time)
    and each one's speed-up over the first."""
    import argparse
    import time
    import tapegrad as tg

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--gate", type=float, default=None)
    ap.add_argument("--max-seconds", type=float, default=600)
    ap.add_argument("--torch", action="store_true")
    a = ap.parse_args(argv)
    w = init_weights(0)
    x, y = batch(a.batch)
    s_tg, _ = tapegrad_step(w)
    tx, ty = tg.from_numpy(x), tg.from_numpy(y)
    cases = {}
    for k in map(int, a.threads.split(",")):
        cases[f"tapegrad {k} thr"] = (lambda k=k: tg.set_num_threads(k), lambda: s_tg(tx, ty))
    if a.torch:
        import torch
        s_th, _ = torch_step(w)
        xx, yy = torch.tensor(x), torch.tensor(y)
        for k in map(int, a.threads.split(",")):
            cases[f"torch {k} thr"] = (lambda k=k: torch.set_num_threads(k), lambda: s_th(xx, yy))
    wall = {c: [] for c in cases}
    cpu = {c: [] for c in cases}
    t0, skipped = time.time(), 0
    while len(wall[next(iter(cases))]) < a.rounds and time.time() - t0 < a.max_seconds:
        if a.gate is not None and _others_busy() > a.gate:
            skipped += 1
            continue
        for c, (setup, fn) in cases.items():
            setup()
            fn()
            best = (float("inf"), float("inf"))
            for _ in range(3):
                c0, w0 = time.thread_time(), time.perf_counter()
                fn()
                best = min(best, (time.perf_counter() - w0, time.thread_time() - c0))
            wall[c].append(best[0])
            cpu[c].append(best[1])
    n = len(wall[next(iter(cases))])
    print(f"batch {a.batch}: {n} rounds ({skipped} skipped by the gate) in {time.time() - t0:.0f} s")
    if not n:
        return
    first = next(iter(cases))
    for c in cases:
        ws, cs = sorted(wall[c]), sorted(cpu[c])
        print(f"  {c:16s} wall best {ws[0] * 1e3:8.3f} ms  median {ws[n // 2] * 1e3:8.3f} ms  "
              f"thread CPU best {cs[0] * 1e3:8.3f} ms   speed-up over {first}: "
              f"{min(wall[first]) / ws[0]:.2f}x best, {sorted(wall[first])[n // 2] / ws[n // 2]:.2f}x median")


if __name__ == "__main__":
    main()
