"""The λ search by successive halving (search=halving) against the study's full search
(search=lambda), side by side on the same data: model-steps, wall, the chosen λ, where it
stands in the full search's fine stage, and the final model's test accuracy (experiment=final,
3 seeds) with each chosen λ. Each search has a store of its own, so neither reuses a result."""

from __future__ import annotations

import csv
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlp.bench.table import Row

ROOT = Path(__file__).resolve().parents[2]
NAN = float("nan")
# the searches measured: (label, overrides after search=...)
VARIANTS = (
    ("full", ["search=lambda"]),
    ("halving", ["search=halving"]),
    ("halving, bundled", ["search=halving", "sweep.bundle=auto"]),
)


def _sweep(args: list[str], sweep_dir: Path, store: Path) -> float:
    """runners/sweep.py ARGS into sweep_dir with its own store; its wall (s)."""
    cmd = [sys.executable, "runners/sweep.py", *args, f"hydra.sweep.dir={sweep_dir}"]
    cmd += [f"sweep.store={store}", "sweep.progress=false"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return wall


def full_model_steps(sweep_dir: Path) -> int:
    """Steps trained by a plain search's ok jobs (each job's result.json)."""
    results = [json.loads(p.read_text()) for p in sweep_dir.glob("*/result.json")]
    return sum(int(r["steps"]) for r in results if r.get("status") == "ok")


def plateau(fine: list[dict], metric: str) -> list[float]:
    """The full search's top plateau: fine λ whose mean metric reaches the best λ's lowest seed."""
    best = max(fine, key=lambda row: row[f"{metric}_mean"])
    return sorted(r["lambda"] for r in fine if r[f"{metric}_mean"] >= best[f"{metric}_min"])


def measure(data: list[str], out: Path) -> dict:
    found: dict = {}
    for label, extra in VARIANTS:
        sweep_dir = out / label.replace(", ", "_")
        wall = _sweep([*extra, *data], sweep_dir, out / f"store_{sweep_dir.name}")
        search = json.loads((sweep_dir / "lambda_search.json").read_text())
        summary = json.loads((sweep_dir / "sweep.json").read_text())
        steps = (
            search["halving"]["model_steps"] if "halving" in search else full_model_steps(sweep_dir)
        )
        found[label] = {
            "wall_s": wall,
            "sweep_wall_s": summary["wall_s"],
            "jobs": summary["jobs"],
            "model_steps": steps,
            "search": search,
        }
    chosen = sorted({v["search"]["chosen_lambda"] for v in found.values()})
    final_dir = out / "final"
    _sweep(
        ["-m", "experiment=final", *data, f"lambda={','.join(map(repr, chosen))}", "seed=0,1,2"],
        final_dir,
        out / "store_final",
    )
    with (final_dir / "results.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["status"] == "ok"]
    finals = {}
    for lam in chosen:
        accs = [float(r["test_acc"]) for r in rows if float(r["lambda"]) == lam]
        finals[lam] = (statistics.mean(accs), statistics.stdev(accs), len(accs))
    found["final"] = finals
    return found


def part_halving(args, rows: list[Row]) -> None:
    if args.quick:
        rows.append(Row("halving", "halving vs full λ search", NAN, "", "left out (--quick)"))
        return
    data = ["data=cifar10_jpeg", f"data.root={args.archive.resolve()}"]
    keep = args.halving_dir
    with tempfile.TemporaryDirectory(prefix="bench-halving-") as tmp:
        out = Path(keep).resolve() if keep else Path(tmp)
        try:
            m = measure(data, out)
        except RuntimeError as exc:
            rows.append(Row("halving", "halving vs full λ search", NAN, "", f"failed: {exc}"))
            return
    full = m["full"]
    fine = full["search"]["fine"]
    metric = full["search"]["metric"]
    top = plateau(fine, metric)
    by_lambda = {r["lambda"]: r for r in fine}
    f_mean, f_std, f_n = m["final"][full["search"]["chosen_lambda"]]
    for label in ("full", "halving", "halving, bundled"):
        v = m[label]
        lam = v["search"]["chosen_lambda"]
        rows.append(
            Row(
                "halving",
                f"{label}: model-steps",
                float(v["model_steps"]),
                "steps",
                f"{v['jobs']} jobs; full/this {full['model_steps'] / v['model_steps']:.2f}×",
            )
        )
        rows.append(
            Row(
                "halving",
                f"{label}: wall",
                v["wall_s"],
                "s",
                f"sweep.json {v['sweep_wall_s']:.1f} s; full/this {full['wall_s'] / v['wall_s']:.2f}×",
            )
        )
        in_full = by_lambda.get(lam)
        where = (
            f"full search's mean {metric} at it {in_full[f'{metric}_mean']:.4f}"
            if in_full
            else "not among the full search's fine λ"
        )
        inside = top[0] <= lam <= top[-1]
        rows.append(
            Row(
                "halving",
                f"{label}: chosen λ",
                lam,
                "",
                f"{where}; inside the span of the full search's top plateau "
                f"[{top[0]:.6g}, {top[-1]:.6g}]: {'yes' if inside else 'no'}; one of its "
                f"{len(top)} λ (mean {metric} ≥ the best λ's lowest seed): "
                f"{'yes' if any(lam == t for t in top) else 'no'}",
            )
        )
        mean, std, n = m["final"][lam]
        rows.append(
            Row(
                "halving",
                f"{label}: final test acc with its λ",
                mean,
                "",
                f"± {std:.4f} (std, {n} seeds, experiment=final); |Δ| to full "
                f"{abs(mean - f_mean):.4f}, full's std {f_std:.4f} ({f_n} seeds)",
            )
        )
