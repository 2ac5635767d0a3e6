"""Requests of memory that are legitimate but too big fail cleanly.

The Hypothesis machine (test_fuzz_api.py) once grew to 24 GB: sizes such as
2**31 make ``pad``, ``repeat_interleave`` or ``tile`` ask for many gigabytes,
which Linux's overcommit heuristic grants and the op then writes.  Where the
allocation is refused (an address-space limit, a smaller machine) the answer
must be a MemoryError that says what was asked for, with nothing kept: no
tensor bytes counted live, a process that does not grow when the pattern is
repeated, and an allocator peak (``tg.memory_stats()``) that counts only
memory that existed.

The requests run in a child process under an address-space limit of its size
plus 256 MB, and ask for 1-4 GB: harmless on any machine even if the limit
were not in force.
"""
import subprocess
import sys
import textwrap

import pytest

import tapegrad as tg

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="uses RLIMIT_AS and /proc/self/statm (Linux)")

CHILD = textwrap.dedent(r'''
    import os, resource, json
    import tapegrad as tg

    PAGE = os.sysconf("SC_PAGE_SIZE")

    def statm(i):
        with open("/proc/self/statm") as f:
            return int(f.read().split()[i]) * PAGE

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = statm(0) + (256 << 20)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    assert resource.getrlimit(resource.RLIMIT_AS)[0] == cap

    x = tg.ones(1, requires_grad=True)      # float32
    u = tg.ones(1, dtype=tg.uint8)
    n = 2**29                                # 2 GB of float32, 1 GB of uint8 (x2 for pad)
    calls = {
        "pad": lambda: tg.pad(x, n),
        "pad_uint8": lambda: tg.pad(u, n),
        "repeat_interleave": lambda: tg.repeat_interleave(x, n),
        "zeros": lambda: tg.zeros(n),
        "ones": lambda: tg.ones(n, dtype=tg.float64),
        "randn": lambda: tg.randn(n),
        "full": lambda: tg.full((n,), 2.0),
        "contiguous": lambda: x.broadcast_to((n,)).contiguous(),
        "add": lambda: x.broadcast_to((n,)) + 1.0,
        "backward": lambda: x.broadcast_to((n,)).contiguous().sum().backward(),
    }
    out = {"messages": {}, "rss": [], "live": []}
    for rep in range(6):
        for name, f in calls.items():
            try:
                f()
            except MemoryError as e:
                out["messages"][name] = str(e)
            else:
                out["messages"][name] = None
        out["rss"].append(statm(1))
        out["live"].append(tg.memory_stats()["live_bytes"])
    out["peak"] = tg.memory_stats()["peak_bytes"]
    print(json.dumps(out))
''')


@pytest.fixture(scope="module")
def child():
    import json
    r = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


NAMES = ["pad", "pad_uint8", "repeat_interleave", "zeros", "ones", "randn", "full", "contiguous",
         "add", "backward"]


@pytest.mark.parametrize("name", NAMES)
def test_a_refused_request_is_a_memory_error_saying_how_much(child, name):
    msg = child["messages"][name]
    assert msg is not None, f"{name}: a request of gigabytes above the limit did not fail"
    assert "memory" in msg and "bytes" in msg, msg
    asked = int(msg.split("allocating ")[1].split()[0])
    assert asked >= 2**29, msg  # the size asked for, not a later small allocation


def test_refused_requests_keep_nothing(child):
    # the same ten refusals six times over: no tensor memory kept, no growth
    assert len(set(child["live"])) == 1, child["live"]
    growth = child["rss"][-1] - child["rss"][0]
    assert growth < 16 << 20, child["rss"]


def test_peak_counts_only_memory_that_existed(child):
    # tg.memory_stats()["peak_bytes"] counted the refused gigabytes (it was
    # raised before the allocation was tried)
    assert child["peak"] < 64 << 20, child["peak"]


def test_peak_after_an_absurd_request_in_process():
    tg.reset_peak_memory()
    before = tg.memory_stats()["peak_bytes"]
    with pytest.raises(MemoryError):
        tg.zeros(2**42)  # 16 TB: refused by any allocator
    assert tg.memory_stats()["peak_bytes"] == before
    t = tg.zeros(1000)
    assert tg.memory_stats()["peak_bytes"] >= before + 4000
    del t
