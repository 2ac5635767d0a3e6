"""Notebook 04's peak table (notebooks/src/make_04.py: peak_table) knows every micro-kernel
of the machine's architecture: fed an arm64 CPU description it shows the NEON kernel's
register tile and peak formula, fed an x86-64 one the AVX-512/AVX2 ones; the tiles it
prints are the ones csrc/kernels/gemm.h defines (no run on arm64 is needed)."""
import re
import sys
from pathlib import Path

import pytest

pytest.importorskip("nbformat")  # make_04 imports nbtools, which needs it
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "notebooks" / "src"))
import make_04  # noqa: E402


def c_tiles():
    """{kernel: ((MR, NR) float32, (MR, NR) float64)} from the C sources."""
    gemm_h = (ROOT / "csrc" / "kernels" / "gemm.h").read_text()
    d = {(isa.lower(), rc, dt): int(v) for isa, rc, dt, v in
         re.findall(r"#define TG_GEMM_(\w+?)_(MR|NR)_(F32|F64) (\d+)", gemm_h)}
    tiles = {isa: ((d[isa, "MR", "F32"], d[isa, "NR", "F32"]), (d[isa, "MR", "F64"], d[isa, "NR", "F64"]))
             for isa in {k[0] for k in d}}
    gemm_c = (ROOT / "csrc" / "kernels" / "gemm.c").read_text()
    mr = int(re.search(r"#define TG_GENERIC_MR (\d+)", gemm_c).group(1))
    nr = int(re.search(r"#define TG_GENERIC_NR (\d+)", gemm_c).group(1))
    tiles["generic"] = ((mr, nr), (mr, nr))
    return tiles


def rows(table):
    """{kernel: [cells]} of the markdown table, and which kernel is marked in use."""
    out, used = {}, []
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        name = re.match(r"\*\*(\w+)\*\*", cells[0]).group(1)
        out[name] = cells
        if "in use" in cells[0]:
            used.append(name)
    return out, used


def test_arm64_shows_the_neon_kernel_its_tile_and_peak():
    table, per_cycle, peak = make_04.peak_table("aarch64", "neon", 2400.0, 8)
    r, used = rows(table)
    assert set(r) == {"neon", "generic"} and used == ["neon"]
    neon = r["neon"]
    assert "8 × 12" in neon[2] and "f64 6 × 8" in neon[2]
    assert neon[3] == "24 of 8 × 3"                 # 8 rows x 3 q-registers of 4 floats
    assert neon[4] == "2 × 4 × 2 = 16" and per_cycle == 16
    assert peak == pytest.approx(16 * 2.4) and neon[5] == "38 GFLOP/s"
    # macOS reports the same machine as "arm64"
    assert make_04.peak_table("arm64", "neon", None, 8)[0].count("clock unknown") == 2


def test_x86_shows_avx512_avx2_and_generic():
    table, per_cycle, peak = make_04.peak_table("x86_64", "avx2", 3000.0, 4)
    r, used = rows(table)
    assert set(r) == {"avx512", "avx2", "generic"} and used == ["avx2"]
    assert per_cycle == 32 and peak == pytest.approx(96.0)
    assert r["avx512"][4] == "2 × 16 × 2 = 64" and r["avx2"][3] == "12 of 6 × 2"


def test_the_tiles_shown_are_the_ones_the_c_code_uses():
    tiles = c_tiles()
    for machine, names in (("aarch64", ("neon", "generic")), ("x86_64", ("avx512", "avx2", "generic"))):
        r, _ = rows(make_04.peak_table(machine, names[0], 1000.0, 1)[0])
        for name in names:
            (mr, nr), (mr64, nr64) = tiles[name]
            assert r[name][2] == f"{mr} × {nr} (f64 {mr64} × {nr64})", name


def test_a_kernel_the_architecture_lacks_is_refused():
    with pytest.raises(ValueError, match="avx2"):
        make_04.peak_table("aarch64", "avx2", 2000.0, 4)


def test_the_notebook_cell_defines_the_same_function():
    # the notebook shows peak_table's own source, so the tested code is the code shown
    assert "def peak_table(machine, isa, mhz, cores):" in make_04.PEAK_CELL
    nb = (ROOT / "notebooks" / "04_fast_matmul.ipynb").read_text()
    assert "def peak_table(machine, isa, mhz, cores):" in nb
