"""Smoke test of the benchmark tool: `--quick` runs end to end and writes its table.

No timing assertions here (the benchmark reports figures; it is not a test of them)."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_benchmark_quick_writes_its_table(tmp_path):
    out = tmp_path / "bench"
    proc = subprocess.run(
        [sys.executable, "runners/benchmark.py", "--quick", "--steps", "5", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    csvs, mds = list(out.glob("*-quick.csv")), list(out.glob("*-quick.md"))
    assert len(csvs) == 1 and len(mds) == 1
    rows = list(csv.DictReader(csvs[0].open()))
    names = [r["name"] for r in rows]
    for dtype in ("float64", "float32"):
        assert f"GEMM peak {dtype}, 1 thread" in names
        assert f"project step, batch 100, {dtype}, 1 thread" in names
        assert f"numpy step, batch 100, {dtype}, 1 thread" in names
        assert f"ratio project/numpy, {dtype}, 1 thread" in names
        assert f"numpy step in a fresh process, batch 100, {dtype}, 1 thread" in names
    for r in rows:
        if r["name"].startswith(("project step", "numpy step", "GEMM peak", "ratio project/numpy")):
            assert float(r["value"]) > 0, r
    assert {r["part"] for r in rows} >= {"peak", "step", "data"}
    md = mds[0].read_text()
    assert "Machine:" in md and "mlp-bench --quick" in md and "| part | figure |" in md
    assert "project step, batch 100, float64, 1 thread" in proc.stdout


@pytest.mark.slow
def test_benchmark_rejects_unknown_part(tmp_path):
    proc = subprocess.run(
        [sys.executable, "runners/benchmark.py", "--parts", "step,warp", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "warp" in proc.stderr and "allowed" in proc.stderr
    assert not list(tmp_path.iterdir())


def test_malloc_thresholds_are_set_on_glibc():
    """The benchmark pins glibc's thresholds so the plain loop's timing does not depend on history."""
    from mlp.bench import malloc

    if sys.platform != "linux":
        pytest.skip("glibc's mallopt is Linux-only")
    assert malloc.set_thresholds(malloc.RAISED)


@pytest.mark.slow
@pytest.mark.ray
def test_sweep_scale_quick_measures_a_real_sweep(tmp_path):
    """`--parts sweep-scale --quick`: 40 tiny jobs through the real sweep command; every row has a
    number (a sweep that failed to run shows as a row with no value and its error)."""
    out = tmp_path / "bench"
    cmd = [sys.executable, "runners/benchmark.py", "--parts", "sweep-scale", "--quick"]
    proc = subprocess.run(
        [*cmd, "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = list(csv.DictReader(next(out.glob("*-quick.csv")).open()))
    scale = [r for r in rows if r["part"] == "sweep-scale"]
    assert scale and all(r["value"] not in ("", "nan") for r in scale), scale
    assert not [r for r in scale if "failed" in r.get("note", "")], scale


def test_the_floor_counts_the_studys_work():
    """From the study's own settings: checks (35,040 steps of 100 + the overfit check's 6,000 of
    10) and the final in float64, 48 search jobs × 5,400 steps of 100 in float32, each search
    job's last evaluation (45,000 train + 5,000 val images) and its test set."""
    from conftest import compose_cfg

    from mlp.bench.floor import study_work

    work = study_work(lambda ov: compose_cfg(["data=cifar10_jpeg", *ov]))
    assert work.jobs == 12 - 3 + 3 + 48  # the gradcheck's 3 runs train nothing
    assert work.samples == {"float64": 35_040 * 100 + 6_000 * 10, "float32": 48 * 5_400 * 100}
    assert work.images["float32"] == 48 * (45_000 + 5_000 + 10_000)
