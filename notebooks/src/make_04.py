"""Source of notebooks/04_fast_matmul.ipynb."""
import inspect
import re

from nbtools import code, md, write

def cpu_mhz():
    """The clock in MHz: the largest "cpu MHz" of /proc/cpuinfo (x86 Linux), else the
    maximum frequency of cpu0 (arm64 Linux); None where neither exists (macOS, Windows)."""
    try:
        with open("/proc/cpuinfo") as f:
            found = re.findall(r"cpu MHz\s*:\s*([\d.]+)", f.read())
        if found:
            return max(float(m) for m in found)
        with open("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq") as f:
            return int(f.read()) / 1e3  # kHz
    except (OSError, ValueError):
        return None


def peak_table(machine, isa, mhz, cores):
    """The matmul micro-kernels of architecture `machine` (platform.machine()), the one in
    use (`isa`, tg._C.gemm_isa()) marked, each with its register tile and float32 peak.
    Returns (markdown table, float32 flops per cycle per core of `isa`, peak GFLOP/s of one
    core or None when the clock `mhz` is unknown)."""
    arm = machine.lower() in ("aarch64", "arm64")
    # name: (register, f32 lanes, FMA units per core, f32 tile MR x NR, f64 tile)
    kernels = {"neon": ("128-bit v0-v31", 4, 2, (8, 12), (6, 8))} if arm else {
        "avx512": ("512-bit zmm0-31", 16, 2, (8, 32), (8, 16)),
        "avx2": ("256-bit ymm0-15", 8, 2, (6, 16), (6, 8))}
    # the portable C kernel: plain C that the compiler vectorizes for 128-bit registers
    # (SSE2, NEON), a multiply and an add per lane (no FMA: counted as one "unit")
    kernels["generic"] = ("128-bit, by the compiler", 4, 1, (4, 8), (4, 8))
    rows = ["| kernel | registers | f32 tile MR × NR | accumulators | flops/cycle/core | peak/core |",
            "|---|---|---|---|---|---|"]
    mine = None
    for name, (reg, lanes, units, (mr, nr), (mr64, nr64)) in kernels.items():
        per_cycle = 2 * lanes * units
        formula = f"2 × {lanes} × {units} = {per_cycle}"
        peak = per_cycle * mhz / 1e3 if mhz else None
        acc = f"{mr * nr // lanes} of {mr} × {nr // lanes}" if name != "generic" else "-"
        shown = f"{peak:.0f} GFLOP/s" if peak else "clock unknown"
        mark = " ← in use" if name == isa else ""
        rows.append(f"| **{name}**{mark} | {reg} | {mr} × {nr} (f64 {mr64} × {nr64}) | {acc} "
                    f"| {formula} | {shown} |")
        if name == isa:
            mine = (per_cycle, peak)
    if mine is None:
        raise ValueError(f"no micro-kernel {isa!r} on {machine}")
    return "\n".join(rows), mine[0], mine[1]

PEAK_CELL = (r"""
from IPython.display import Markdown, display
""" + inspect.getsource(cpu_mhz) + "\n\n" + inspect.getsource(peak_table) + r"""
mhz, cores, isa = cpu_mhz(), os.cpu_count(), tg._C.gemm_isa()
table, per_cycle, peak1 = peak_table(platform.machine(), isa, mhz, cores)
display(Markdown(table))
print(f"{platform.machine()}: clock {mhz} MHz, {cores} cores, micro-kernel {isa}: "
      f"{per_cycle} float32 flops/cycle/core -> peak "
      + (f"{peak1:.0f} GFLOP/s per core, {peak1 * cores:.0f} GFLOP/s in all" if peak1
         else "unknown (no clock)"))
""").strip("\n")

cells = [
md(r"""
# 04 · How a fast matmul is made

Matrix multiplication is most of the work in training a network: the MNIST MLP spends
most of its time in three products per layer (the forward one and the two of its VJP).
This notebook measures, on this machine, every step from the textbook triple loop to the
packed, SIMD, threaded kernel in `csrc/kernels/gemm.c`, next to NumPy's BLAS and the
machine's peak. Each step is callable from Python as `tg._C._gemm_variant(name, a, b)`.
"""),
code(r"""
import os, re, time, platform
import numpy as np
import matplotlib.pyplot as plt
import tapegrad as tg

FAST = os.environ.get("TAPEGRAD_NOTEBOOK_FAST") == "1"
print("variants:", tg._C.gemm_variants())
print("micro-kernel for this CPU:", tg._C.gemm_isa(), "| threads:", tg.get_num_threads())

def gflops(fn, n, repeat=3):
    fn()
    best = min(_time(fn) for _ in range(repeat))
    return 2 * n ** 3 / best / 1e9

def _time(fn):
    t0 = time.perf_counter(); fn(); return time.perf_counter() - t0
"""),
md(r"""
## The machine's peak

The micro-kernel at the heart of the fast matmul keeps an MR × NR tile of C in SIMD
registers and updates it with fused multiply-adds (FMA: a·b + c in one instruction, counted
as 2 flops). A core's peak is therefore 2 × (lanes per register) × (FMA units) flops per
cycle, times the clock, times the cores. The table lists the micro-kernels this build has for
this machine's architecture, with the one in use marked: on x86-64 AVX-512 (16 float32 lanes)
and AVX2 (8 lanes), on arm64 NEON (4 lanes, 32 registers, `vfmaq_laneq_f32` multiplies a
whole row of B by one lane of A), and everywhere the portable C kernel. Two FMA units is an
assumption that fits most cores (Intel and AMD since Haswell and Zen 2, Arm Cortex-A76 and
Neoverse); Apple's M1 and M2 performance cores have four 128-bit units, which doubles the
NEON peak.
"""),
code(PEAK_CELL),
md(r"""
## Step by step

1. **naive**: `C[i,j] += A[i,k] * B[k,j]` with k innermost: B is walked down a column, one
   cache line per multiply.
2. **reordered**: loop order i, k, j: the innermost loop runs along rows of B and C, unit
   stride, which the compiler vectorizes.
3. **blocked**: tiles that fit in cache are reused many times before being evicted.
4. **packed_scalar**: the BLIS/GotoBLAS structure: copy ("pack") panels of A and B into
   contiguous buffers in exactly the order the inner kernel reads them, then a small
   register-blocked micro-kernel computes an MR × NR tile of C.
5. **packed_simd**: the same with the micro-kernel written in SIMD FMA intrinsics, AVX2 or
   AVX-512 on x86-64 and NEON on arm64 (the table above), chosen at run time.
6. **packed_simd_mt**: the same, split over the threads of the pool. A small product gives
   each thread a slab of C; a big one packs each panel of B once, all threads together, then
   hands out blocks of rows of C one at a time (BLIS's scheme), so nothing is packed twice and
   a thread on a busy core simply takes fewer blocks. Either way every element of C is the same
   sum in the same order: the result is bitwise identical on any number of threads.
"""),
code(r"""
rng = np.random.default_rng(0)
results = {}
sizes = {"naive": 128 if FAST else 256, "reordered": 256 if FAST else 512,
         "blocked": 256 if FAST else 512}
big = 256 if FAST else 1024
for v in tg._C.gemm_variants():
    n = sizes.get(v, big)
    a = tg.tensor(rng.standard_normal((n, n)), dtype=tg.float32)
    b = tg.tensor(rng.standard_normal((n, n)), dtype=tg.float32)
    results[v] = (n, gflops(lambda: tg._C._gemm_variant(v, a, b), n))
    print(f"{v:15s} n={n:5d}  {results[v][1]:7.1f} GFLOP/s")
A = rng.standard_normal((big, big)).astype(np.float32)
results["numpy (BLAS)"] = (big, gflops(lambda: A @ A, big))
ta = tg.from_numpy(A)
results["tapegrad a @ b"] = (big, gflops(lambda: ta @ ta, big))
for k in ("numpy (BLAS)", "tapegrad a @ b"):
    print(f"{k:15s} n={big:5d}  {results[k][1]:7.1f} GFLOP/s")
"""),
code(r"""
names = list(results)
vals = [results[k][1] for k in names]
fig, ax = plt.subplots(figsize=(9, 3.8))
ax.barh(names, vals, color=["#bbb"] * (len(names) - 2) + ["#4c72b0", "#dd8452"])
if peak1:
    ax.axvline(peak1, ls="--", c="k", lw=1, label="peak, 1 core")
    ax.axvline(peak1 * cores, ls=":", c="k", lw=1, label=f"peak, {cores} cores")
    # outside the axes, so that it never covers a bar
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
ax.set(xlabel="GFLOP/s (float32)", xscale="log", title="from the triple loop to the packed SIMD kernel")
plt.tight_layout(); plt.show()
print(f"packed SIMD threaded vs naive: {results['packed_simd_mt'][1] / results['naive'][1]:.0f}x")
print(f"blocked vs reordered (both n={sizes['blocked']}): "
      f"{results['blocked'][1] / results['reordered'][1]:.2f}x")
"""),
md(r"""
**Why "blocked" is not faster than "reordered" here.** Blocking pays when the data a loop
reuses would otherwise fall out of the cache. At n = 512 the "reordered" loop's working set
is small: one row of C (2 KiB) stays in L1 for all K updates, and B (1 MiB) is read row
after row, unit stride, which the hardware prefetcher streams from L2/L3 almost for free.
There is little left for blocking to save, and it costs something: the inner loop is cut
to 256 elements instead of 512 (twice the loop start-ups and remainders), each piece of a row
of C is loaded and stored again for every block of K, and the accesses still go through the
original strides (no packing). So "blocked" comes out about as fast as "reordered" or slower
(the ratio printed above). Nor is **packed_scalar** much faster than "reordered": its
portable micro-kernel is plain C, about as vectorised as the compiler makes "reordered"'s
inner loop. What blocking and packing buy shows up with **packed_simd**: the packed,
contiguous panels let a micro-kernel written with SIMD FMA instructions keep an MR × NR tile
of C in registers and reuse every loaded value MR or NR times. That, not blocking alone, is
the big jump in the chart.

These timings come from a machine shared with other jobs (two cores, several engineers
building and testing), so they vary from run to run by tens of percent. For instance
`packed_simd_mt` and `tapegrad a @ b` run the same packed, threaded kernel at n = 1024,
so any difference between those two bars is noise; and while another job holds the second
core, the threaded kernel can come out no faster than (or even slower than) the
single-threaded `packed_simd`, since its threads wait for each other. Read the order of
magnitude of each step, not the third digit.
"""),
md(r"""
## Correctness first

Every fast path is tested against the naive reference in the C test suite
(`tests/c/test_gemm.c`: all transposes, odd sizes, strides, alpha/beta, both dtypes, every
micro-kernel). Here a quick check on a transposed view, which the packing handles without a
copy:
"""),
code(r"""
a = tg.randn(300, 200)
b = tg.randn(300, 100)          # we want a.T @ b: a strided (transposed) view, no copy
ref = a.numpy().astype(np.float64).T @ b.numpy().astype(np.float64)
for v in tg._C.gemm_variants():
    err = np.abs(tg._C._gemm_variant(v, a.T, b).numpy() - ref).max()
    print(f"{v:15s} max error {err:.2e}")
    assert err < 1e-3
"""),
md(r"""
**Why packing wins.** The micro-kernel keeps an MR × NR tile of C in registers and streams
through K, reading one column of the A panel and one row of the B panel per step, both
contiguous thanks to packing, so every load is a full vector and the hardware prefetcher
keeps up. The blocking sizes (KC, MC, NC) are chosen so that the B micro-panel stays in L1,
the A block in L2 and the B panel in L3: see the comments at the top of `csrc/kernels/gemm.c`.
"""),
md(r"""
## Beyond matmul: a convolution, and an algorithm that rounds differently

A convolution is a matmul in disguise: each output is a sum of input window × kernel over
the input channels and the kernel's taps, so `conv2d` runs on the same packed micro-kernel,
reading the windows straight from the image ("implicit GEMM", no unrolled copy). For the
5×5 kernels of the MNIST CNN there is a faster algorithm, **Winograd's minimal filtering**:
it transforms 7×7 tiles of the input and the kernel, multiplies the transforms element by
element (summed over channels: 49 small matmuls) and transforms back 3×3 tiles of output,
with 49 multiplications per tile instead of 225 (`docs/performance.md`, "Winograd
convolution"). The 3×3 kernels of VGG- and ResNet-style networks get the same treatment
with 6×6 tiles in and 4×4 out: 36 multiplications instead of 144. `conv2d` uses it by
default for float32 5×5 and 3×3 layers with stride 1 and at least 8 channels in and out;
the environment variable `TAPEGRAD_CONV` (read at each call) chooses a path, `implicit`
being the exact direct one. The cell times both on the CNN's second layer and on a 3×3
layer of 64 channels, and measures each against the same convolution in float64.
"""),
code(r"""
layers = {"5x5, the CNN's 2nd layer": ((32, 16, 14, 14), (32, 16, 5, 5), "winograd3"),
          "3x3, 64 -> 64 channels": ((16, 64, 32, 32), (64, 64, 3, 3), "winograd4")}
for name, (xshape, wshape, tile) in layers.items():
    x = tg.from_numpy(rng.standard_normal(xshape).astype(np.float32))
    w = tg.from_numpy((rng.standard_normal(wshape) / np.sqrt(np.prod(wshape[1:]))).astype(np.float32))
    pad = wshape[-1] // 2
    ref = tg.conv2d(x.double(), w.double(), padding=pad).numpy()   # float64: the exact answer
    scale = np.abs(ref).max()
    flop = 2 * ref.size * np.prod(wshape[1:])                      # the direct sum's multiply-adds x 2
    conv = {}
    for path in ("implicit", tile):
        os.environ["TAPEGRAD_CONV"] = path
        out = tg.conv2d(x, w, padding=pad).numpy()
        t = min(_time(lambda: tg.conv2d(x, w, padding=pad)) for _ in range(5 if FAST else 20))
        conv[path] = (t, np.abs(out - ref).max() / scale)
        print(f"{name}  {path:10s} {t * 1e3:6.2f} ms  {flop / t / 1e9:6.1f} GFLOP/s (direct-sum count)  "
              f"largest error {conv[path][1]:.1e} of the largest output")
    del os.environ["TAPEGRAD_CONV"]                              # back to the default choice
    print(f"{name}  Winograd takes {conv[tile][0] / conv['implicit'][0]:.2f} of the direct path's "
          f"time; its error is {conv[tile][1] / conv['implicit'][1]:.0f}x larger\n")
"""),
md(r"""
**Faster, but not the same bits.** Winograd does fewer multiplications, so its "GFLOP/s"
(counted as the direct sum's) can exceed what the machine can execute. The price is
rounding: the transforms multiply by constants up to 6 and divide by up to 60, so the
intermediate numbers are larger than the terms of the direct sum and partly cancel. Its
error is typically ten or more times the direct path's, still around 1e-6 (5×5) to 1e-5
(3×3) of the largest output (tapegrad bounds it at 128 float32 epsilons times the sum of
|x|·|w| over a window, and tests that bound). Training does not notice; a comparison digit by digit with PyTorch or
with the direct path does. That is why float64 (which the gradient checks use) always takes
the exact path, and why `TAPEGRAD_CONV=implicit` exists.
"""),
]

if __name__ == "__main__":
    print(write("04_fast_matmul.ipynb", cells))
