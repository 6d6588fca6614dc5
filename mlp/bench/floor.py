"""The study's compute floor: the reproduction's arithmetic, counted from its own settings
(conf/reproduce/full.yaml, conf/search/lambda.yaml, the experiments), divided by this machine's
one-thread rates for the same shapes measured in the same run, over the cores. What
`mlp-reproduce` takes beyond it is start-up, set-up, idle cores and whatever else it does."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from mlp.bench import bundle, steps
from mlp.bench.table import Row
from mlp.train import record_steps, resolve_n_s, total_steps

IMAGES_PER_BATCH = 10_000  # a CIFAR-10 batch file (and the test set)


@dataclass
class Work:
    """Training samples and evaluated images, per precision (float64 jobs, float32 search)."""

    samples: dict[str, int] = field(default_factory=lambda: {"float64": 0, "float32": 0})
    images: dict[str, int] = field(default_factory=lambda: {"float64": 0, "float32": 0})
    jobs: int = 0

    def add(self, cfg) -> None:
        """One job: its training steps' samples, its record points' train + val images, its test."""
        if cfg.get("kind", "train") != "train":
            return
        split = cfg.split
        n_train = len(split.train_batches) * IMAGES_PER_BATCH - int(split.val_holdout or 0)
        if split.get("train_limit"):
            n_train = min(n_train, int(split.train_limit))
        n_val = int(split.val_holdout or 0) or IMAGES_PER_BATCH
        n_s = resolve_n_s(cfg.train, n_train)
        n_steps = total_steps(cfg.train, n_train, n_s)
        marks = len(record_steps(cfg.train, n_steps, n_s))
        self.samples[cfg.dtype] += n_steps * int(cfg.train.batch_size)
        self.images[cfg.dtype] += marks * (n_train + n_val) + IMAGES_PER_BATCH
        self.jobs += 1


def study_work(compose) -> Work:
    """compose(overrides) -> config. The full profile's checks and final (3 seeds each) and
    the λ search (both stages, every λ × seed); λ does not change the work."""
    from omegaconf import OmegaConf

    from mlp.cli import conf_file

    prof = OmegaConf.load(conf_file("reproduce") / "full.yaml")
    search = OmegaConf.load(conf_file("search") / "lambda.yaml").search
    work = Work()
    for name in prof.checks.experiments:
        for _ in prof.checks.seeds:
            work.add(compose([f"experiment={name}", *prof.checks.overrides]))
    for _ in prof.final.seeds:
        work.add(compose(["experiment=final", *prof.final.overrides]))
    stages = ((search.coarse, len(search.coarse.grid)), (search.fine, int(search.fine.n)))
    for stage, n_lambdas in stages:
        for _ in range(n_lambdas * len(prof.search.seeds)):
            work.add(compose([f"experiment={stage.experiment}", *prof.search.overrides]))
    return work


def forward_rate(dtype: str, n_rows: int = 10_000, repeats: int = 3) -> float:
    """Images/s of mlp.evaluate over n_rows uint8 rows, one thread (median of repeats)."""
    from mlp.data import Split
    from mlp.evaluate import evaluate
    from mlp.model import init_params

    x, y = steps.make_rows(n_rows, 3072, 10, 0)
    params = init_params(3072, 50, 10, np.random.default_rng(0), np.dtype(dtype))
    mean, inv_std = x.mean(axis=0), 1.0 / x.std(axis=0)
    times = []
    with threadpool_limits(1):
        for _ in range(repeats):
            t0 = time.perf_counter()
            evaluate(params, Split(x, y), mean, inv_std, 0.0)
            times.append(time.perf_counter() - t0)
    return n_rows / float(np.median(times))


def rates(n_steps: int = 200, repeats: int = 3, bundle_k: int = 6) -> dict[str, float]:
    """One-thread rates: float64 training samples/s (the project's step, batch 100), float32
    model-samples/s in a bundle of bundle_k (the search's), and both precisions' forward pass."""
    step64 = steps.measure("float64", 1, n_steps, repeats, with_torch=False, extra=False)
    b32 = bundle.measure("float32", bundle_k, n_steps, repeats)
    return {
        "train float64": step64.samples_per_s["project"],
        "train float32": b32.per_model["bundle"] * bundle_k,
        "forward float64": forward_rate("float64"),
        "forward float32": forward_rate("float32"),
    }


def floor_seconds(work: Work, rate: dict[str, float], cores: int) -> dict[str, float]:
    """Each kind of work at its one-thread rate, spread perfectly over the cores."""
    parts = {}
    for dtype in ("float64", "float32"):
        parts[f"train {dtype}"] = work.samples[dtype] / rate[f"train {dtype}"] / cores
        parts[f"forward {dtype}"] = work.images[dtype] / rate[f"forward {dtype}"] / cores
    return parts


def part_floor(args, rows: list[Row]) -> None:
    """Rows: the floor of each kind of work, their sum, and (not --quick) a fresh
    `mlp-reproduce data=cifar10_jpeg` on the archive with its wall against that sum."""
    from hydra import compose, initialize_config_module

    from mlp.cli import CONF_MODULE

    with initialize_config_module(config_module=CONF_MODULE, version_base="1.3"):
        work = study_work(
            lambda ov: compose(config_name="config", overrides=["data=cifar10_jpeg", *ov])
        )
    rate = rates(args.steps, max(3, args.repeats // 3))
    cores = os.cpu_count() or 1
    parts = floor_seconds(work, rate, cores)
    for name, seconds in parts.items():
        kind, dtype = name.split()
        count = work.samples[dtype] if kind == "train" else work.images[dtype]
        unit = "training samples" if kind == "train" else "images evaluated"
        rows.append(
            Row(
                "floor",
                f"{name}: {count:,} {unit}",
                seconds,
                "s",
                f"at {rate[name]:,.0f}/s on one thread, over {cores} cores",
            )
        )
    floor = sum(parts.values())
    rows.append(Row("floor", f"the study's compute floor on {cores} cores", floor, "s", ""))
    if args.quick:
        rows.append(Row("floor", "mlp-reproduce wall", float("nan"), "s", "left out (--quick)"))
        return
    with tempfile.TemporaryDirectory(prefix="bench-reproduce-") as tmp:
        cmd = [
            sys.executable,
            "-m",
            "mlp.commands.reproduce",
            "data=cifar10_jpeg",
            f"data.root={Path(args.archive).resolve()}",
            "--runs-dir",
            f"{tmp}/runs",
            "--report-dir",
            f"{tmp}/report",
        ]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            rows.append(Row("floor", "mlp-reproduce wall", float("nan"), "s", proc.stderr[-200:]))
            return
        steps_line = next(  # "[reproduce] profile full: ... s in all (Ray start ..., checks ...)"
            (ln for ln in proc.stdout.splitlines() if " s in all (" in ln), "(?)"
        )
        chosen, test = outcome(Path(tmp) / "report")
    rows.append(
        Row(
            "floor",
            "mlp-reproduce data=cifar10_jpeg, fresh: wall",
            wall,
            "s",
            steps_line[steps_line.index("(") + 1 : steps_line.rindex(";")],
        )
    )
    rows.append(Row("floor", "ratio reproduction wall / floor", wall / floor, "×", "target ≤ 1.3"))
    committed = Path("outputs") / "report"  # conf/reproduce/full.yaml's report_dir, in a checkout
    if (committed / "tables" / "final.csv").is_file():
        c_chosen, c_test = outcome(committed)
        notes = (f"committed report: {c_chosen:.6g}", f"committed report: {_pm(c_test)}")
    else:
        notes = ("no committed report in ./outputs/report",) * 2
    rows.append(Row("floor", "chosen λ", f"{chosen:.6g}", "", notes[0]))
    rows.append(Row("floor", "final test accuracy, seeds 0-2", _pm(test), "%", notes[1]))


def outcome(report_dir: Path) -> tuple[float, tuple[float, float]]:
    """A reproduction's chosen λ and its final model's test accuracy (mean, std in %), read
    from its report's final table."""
    import pandas as pd

    final = pd.read_csv(report_dir / "tables" / "final.csv").iloc[0]
    test = (100 * float(final["test_acc_mean"]), 100 * float(final["test_acc_std"]))
    return float(final["lambda"]), test


def _pm(test: tuple[float, float]) -> str:
    return f"{test[0]:.2f} ± {test[1]:.2f}"
