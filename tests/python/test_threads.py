"""Thread count defaults, the configuration report, and an idle pool.

The pool must not fight other thread pools for the cores: its default
respects TAPEGRAD_NUM_THREADS, then OMP_NUM_THREADS, then the CPUs the
process may use (affinity mask, container quota); and between loops its
workers sleep instead of spinning (checked from /proc, no timing)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tapegrad as tg

_PY = os.path.dirname(os.path.dirname(tg.__file__))
_PROBE = ("import json, tapegrad as tg; "
          "print(json.dumps([tg.get_num_threads(), tg.config()['num_threads_default_from']]))")


def probe(env_updates, affinity=None):
    env = {k: v for k, v in os.environ.items()
           if k not in ("TAPEGRAD_NUM_THREADS", "OMP_NUM_THREADS")}
    env.update(env_updates)
    env["PYTHONPATH"] = os.pathsep.join([_PY, env.get("PYTHONPATH", "")])
    pre = (lambda: os.sched_setaffinity(0, affinity)) if affinity else None
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True,
                         timeout=120, check=True, preexec_fn=pre)
    return tuple(json.loads(out.stdout))


def usable_cpus():
    return len(os.sched_getaffinity(0))


def test_default_follows_the_cpus_this_process_may_use():
    n, source = probe({})
    assert source == "cpus"
    assert 1 <= n <= usable_cpus()


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="Linux affinity API")
def test_default_respects_the_affinity_mask():
    first = sorted(os.sched_getaffinity(0))[0]
    assert probe({}, affinity={first}) == (1, "cpus")


def test_environment_variables_take_precedence():
    assert probe({"OMP_NUM_THREADS": "1"}) == (1, "OMP_NUM_THREADS")
    assert probe({"OMP_NUM_THREADS": "3,2"}) == (3, "OMP_NUM_THREADS")
    assert probe({"TAPEGRAD_NUM_THREADS": "5", "OMP_NUM_THREADS": "1"}) == (5, "TAPEGRAD_NUM_THREADS")
    # unusable values are ignored, not fatal
    for bad in ("0", "-2", "abc", "", "100000"):
        n, source = probe({"OMP_NUM_THREADS": bad})
        assert source == "cpus" and n >= 1, bad
        n, source = probe({"TAPEGRAD_NUM_THREADS": bad})
        assert source == "cpus" and n >= 1, bad


def test_set_num_threads_validates_and_restores():
    before = tg.get_num_threads()
    try:
        tg.set_num_threads(1)
        assert tg.get_num_threads() == 1
        for bad in (0, -1, 257):
            with pytest.raises(ValueError, match="set_num_threads"):
                tg.set_num_threads(bad)
        assert tg.get_num_threads() == 1
    finally:
        tg.set_num_threads(before)


def test_config_reports_kernels_threads_and_blas_pools(capsys):
    cfg = tg.config()
    assert cfg["matmul_kernel"] == tg._C.gemm_isa()
    assert cfg["vector_math"] in ("avx512", "avx2", "neon", "baseline")
    assert cfg["num_threads"] == tg.get_num_threads()
    assert cfg["num_threads_default_from"] in ("TAPEGRAD_NUM_THREADS", "OMP_NUM_THREADS", "cpus")
    np.ones((4, 4)) @ np.ones((4, 4))  # make sure NumPy's BLAS is loaded
    loaded = any("openblas" in line.lower() for line in open("/proc/self/maps"))
    pools = tg.config()["blas_pools"]
    assert bool(pools) == loaded
    assert all(p["num_threads"] >= 1 for p in pools)
    tg.show_config()
    out = capsys.readouterr().out
    assert "matmul kernel" in out and f"threads       : {tg.get_num_threads()}" in out


_IDLE = r"""
import os, time, numpy as np, tapegrad as tg
tg.set_num_threads(2)
x = tg.tensor(np.random.rand(4_000_000).astype(np.float32))
a = tg.tensor(np.random.rand(400, 400).astype(np.float32))
for _ in range(20):
    x.exp(); x.sum(); a @ a
def workers():
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            name = open(f"/proc/self/task/{tid}/comm").read().strip()
            state = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if name.startswith("tapegrad-"):
            out[tid] = state
    return out
# the workers spin for up to 100 microseconds (tg_threadpool_set_spin_us), then block;
# poll (generously)
for _ in range(500):
    w = workers()
    if w and all(s in "SD" for s in w.values()):
        print("asleep", len(w)); break
    time.sleep(0.01)
else:
    print("busy", workers())
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")
def test_idle_workers_sleep_instead_of_spinning():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([_PY, os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", _IDLE], env=env, capture_output=True, text=True,
                         timeout=300, check=True).stdout.strip()
    assert out.startswith("asleep"), out
    assert int(out.split()[1]) >= 1  # the pool did start a worker
