"""The report on synthetic results made by real short runs: tables against pandas, figures, determinism,
missing and corrupt results."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SMALL_SYNTHETIC
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from PIL import Image

from mlp.experiment import RESULT_VERSION, run_experiment
from mlp.report.build import KNOWN, build_report
from mlp.report.gather import gather
from mlp.schedule import cyclic_eta

ROOT = Path(__file__).resolve().parent.parent
REPORT_CFG = OmegaConf.load(ROOT / "conf" / "report" / "report.yaml")
SMALL = [*SMALL_SYNTHETIC, "train.blas_threads=1"]
SEARCH = ["split.val_holdout=200", "train.n_s=8"]
# (folder, experiment, overrides, seeds): every section of the study, some with several seeds.
RUNS = [
    ("gradcheck", "gradcheck", [], [0, 1]),
    ("overfit", "overfit", ["train.epochs=5", "train.record_every=10"], [0]),
    ("c1", "cyclic_1cycle", ["train.n_s=10"], [0, 1, 2]),
    ("c3", "cyclic_3cycles", ["train.n_s=5"], [0]),
    ("coarse_a", "lambda_coarse", ["lambda=0.0001", *SEARCH], [0, 1]),
    ("coarse_b", "lambda_coarse", ["lambda=0.01", *SEARCH], [0, 1]),
    ("coarse_c", "lambda_coarse", ["lambda=1.0", *SEARCH], [0, 1]),
    ("fine_a", "lambda_fine", ["lambda=0.003", *SEARCH], [0, 1]),
    ("fine_b", "lambda_fine", ["lambda=0.02", *SEARCH], [0, 1]),
    ("final_a", "final", ["lambda=0.003", "split.val_holdout=100", "train.n_s=8"], [0, 1]),
    ("final_b", "final", ["lambda=0.008", "split.val_holdout=100", "train.n_s=8"], [0]),
]
ALL_TABLES = set(KNOWN)  # a table per experiment
ALL_FIGURES = {
    "lr_schedule",
    "overfit",
    "cyclic_1cycle",
    "cyclic_3cycles",
    "final",
    "lambda_search",
}
# Its fixture trains every experiment of the study on synthetic data (~40 s here).
pytestmark = pytest.mark.slow

METRICS = ["train_acc", "val_acc", "test_acc", "final_train_loss", "final_val_loss"]


def compose_cfg(overrides, cache_dir):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    if "cache_dir" in cfg.data:
        cfg.data.cache_dir = str(cache_dir)
    if (
        cfg.kind == "gradcheck"
    ):  # the small case only: the full 3072-dim case is the core tests' job
        cfg.gradcheck.cases = [{"name": "reduced", "n_samples": 2, "dims": 20, "max_entries": None}]
    return cfg


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory) -> Path:
    """Real short runs on synthetic data, written as result.json files the way runners do."""
    root = tmp_path_factory.mktemp("results")
    for folder, experiment, overrides, seeds in RUNS:
        for seed in seeds:
            cfg = compose_cfg(
                [f"experiment={experiment}", f"seed={seed}", *SMALL, *overrides], root / "cache"
            )
            result = run_experiment(cfg)
            out = root / "outputs" / folder / f"seed{seed}" / "result.json"
            out.parent.mkdir(parents=True)
            out.write_text(json.dumps(result))
    return root / "outputs"


def load_results(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("result.json"))]


def by_experiment(root: Path, experiment: str) -> dict:
    return next(r for r in load_results(root) if r["experiment"] == experiment)


def expected(root: Path, experiment: str) -> pd.DataFrame:
    """Mean, std and n per λ straight from the result files, with plain pandas."""
    df = pd.DataFrame(
        [
            {"lambda": r["lambda"], **{m: r[m] for m in METRICS}}
            for r in load_results(root)
            if r["experiment"] == experiment
        ]
    )
    g = df.groupby("lambda")
    out = g[METRICS].mean().add_suffix("_mean").join(g[METRICS].std().add_suffix("_std"))
    return out.join(g.size().rename("n")).reset_index().sort_values("lambda").reset_index(drop=True)


@pytest.fixture(scope="module")
def report(results_dir):
    return build_report(gather([results_dir]), REPORT_CFG)


@pytest.fixture(scope="module")
def written(results_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report"
    proc = run_report(results_dir, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def run_report(*args, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "runners" / "report.py"), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


# ------------------------------------------------------------------ tables


@pytest.mark.parametrize(
    "experiment", ["cyclic_1cycle", "cyclic_3cycles", "lambda_coarse", "lambda_fine", "final"]
)
def test_training_tables_match_pandas(written, results_dir, experiment):
    table = pd.read_csv(written / "tables" / f"{experiment}.csv")
    want = expected(results_dir, experiment)
    assert len(table) == len(want)
    assert {"lambda", "n", "seeds", "n_s", "cycles"} <= set(table.columns)
    assert {f"{m}_{s}" for m in METRICS for s in ("mean", "std")} <= set(table.columns)
    table = table.sort_values("lambda").reset_index(drop=True)
    np.testing.assert_allclose(table["lambda"], want["lambda"], rtol=1e-9)
    assert list(table["n"]) == list(want["n"])
    for col in [f"{m}_mean" for m in METRICS] + [f"{m}_std" for m in METRICS]:
        np.testing.assert_allclose(
            table[col].to_numpy(float), want[col].to_numpy(float), rtol=1e-8, equal_nan=True
        )


def test_markdown_shows_mean_pm_std_and_n(written, results_dir):
    md = (written / "tables" / "cyclic_1cycle.md").read_text().splitlines()
    want = expected(results_dir, "cyclic_1cycle").iloc[0]
    assert len(md) == 3  # header, rule, one configuration with three seeds
    cells = [c.strip() for c in md[2].strip("|").split("|")]
    header = [c.strip() for c in md[0].strip("|").split("|")]
    assert cells[header.index("n")] == "3"
    assert cells[header.index("seeds")] == "0,1,2"
    want_test = f"{100 * want['test_acc_mean']:.2f} ± {100 * want['test_acc_std']:.2f}"
    assert cells[header.index("test acc (%)")] == want_test
    assert (
        cells[header.index("val loss")]
        == f"{want['final_val_loss_mean']:.4f} ± {want['final_val_loss_std']:.4f}"
    )
    one = (written / "tables" / "cyclic_3cycles.md").read_text().splitlines()[2]
    assert "±" not in one  # a single seed shows its value, no spread


def test_chosen_lambda_is_best_mean_val_acc_without_search_file(written, results_dir):
    both = pd.concat([expected(results_dir, "lambda_coarse"), expected(results_dir, "lambda_fine")])
    best = both.sort_values(["val_acc_mean", "lambda"], ascending=[False, True]).iloc[0]["lambda"]
    marked = []
    for name in ("lambda_coarse", "lambda_fine"):
        t = pd.read_csv(written / "tables" / f"{name}.csv")
        marked += list(t.loc[t["chosen"], "lambda"])
        md = (written / "tables" / f"{name}.md").read_text()
        assert md.count("◀ chosen") == int(t["chosen"].sum())
    assert marked == [pytest.approx(best, rel=1e-9)]


def test_chosen_lambda_comes_from_the_search_file(results_dir, tmp_path):
    root = tmp_path / "r"
    shutil.copytree(results_dir, root)
    (root / "lambda_search.json").write_text(
        json.dumps({"chosen_lambda": 0.02, "coarse_best_lambda": 0.01, "fine_best_val_acc": 0.5})
    )
    rep = build_report(gather([root]), REPORT_CFG)
    assert rep.chosen_lambda == 0.02
    fine = rep.tables["lambda_fine"].frame
    assert list(fine.loc[fine["chosen"], "lambda"]) == [0.02]
    assert not rep.tables["lambda_coarse"].frame["chosen"].any()
    assert "Chosen λ: **0.02**" in rep.markdown
    other = (
        tmp_path / "other_search"
    )  # a search file beside none of these runs (e.g. another data set)
    other.mkdir()
    (other / "lambda_search.json").write_text(json.dumps({"chosen_lambda": 0.0001}))
    rep = build_report(gather([root, other]), REPORT_CFG)
    assert rep.chosen_lambda == 0.02


def test_gradcheck_table(written, results_dir):
    t = pd.read_csv(written / "tables" / "gradcheck.csv")
    grads = [r for r in load_results(results_dir) if r["experiment"] == "gradcheck"]
    assert list(t["param"]) == ["W1", "b1", "W2", "b2"] and set(t["case"]) == {"reduced"}
    assert list(t["n"]) == [2] * 4 and t["passed"].all()
    for _, row in t.iterrows():
        vals = pd.Series(
            [r["gradcheck"]["reduced"]["params"][row["param"]]["max_rel_error"] for r in grads]
        )
        assert row["max_rel_error_mean"] == pytest.approx(vals.mean(), rel=1e-8)
        assert row["max_rel_error_std"] == pytest.approx(vals.std(), rel=1e-6, abs=1e-30)


def test_every_table_written_as_csv_and_markdown(written):
    names = {p.stem for p in (written / "tables").glob("*.csv")}
    assert names == ALL_TABLES
    assert names == {p.stem for p in (written / "tables").glob("*.md")}


# ------------------------------------------------------------------ figures


def test_history_figures_have_three_labelled_panels_and_seed_bands(report):
    for name, seeds in (("cyclic_1cycle", 3), ("cyclic_3cycles", 1), ("final", 2), ("overfit", 1)):
        fig = report.figures[name]
        axes = fig.get_axes()
        assert len(axes) == 3, name
        assert [ax.get_title() for ax in axes] == ["Cross-entropy loss", "Cost", "Accuracy"]
        for ax in axes:
            assert ax.get_xlabel() == "update step" and ax.get_ylabel()
            assert len(ax.get_lines()) == 2  # training and validation
            labels = [t.get_text() for t in ax.get_legend().get_texts()]
            assert any("training" in s for s in labels) and any("validation" in s for s in labels)
            assert len(ax.collections) == (2 if seeds > 1 else 0), (
                name
            )  # ±std bands only over several seeds
        assert "SYNTHETIC" in fig._suptitle.get_text()


def test_final_figure_shows_the_configuration_with_most_seeds(report):
    assert "λ = 0.003, 2 seeds" in report.figures["final"]._suptitle.get_text()


def test_lr_schedule_figure_is_the_studys_figure_1(report):
    (ax,) = report.figures["lr_schedule"].get_axes()
    (line,) = ax.get_lines()
    s = REPORT_CFG.lr_schedule
    t = np.arange(s.steps + 1)
    np.testing.assert_array_equal(line.get_xdata(), t)
    np.testing.assert_allclose(line.get_ydata(), cyclic_eta(t, s.eta_min, s.eta_max, s.n_s))
    assert (s.eta_min, s.eta_max, s.n_s, s.steps) == (0.05, 0.1, 10, 100)
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title() and ax.get_legend()


def test_lambda_figure_log_axis_coarse_and_fine_with_error_bars(report):
    (ax,) = report.figures["lambda_search"].get_axes()
    assert ax.get_xscale() == "log"
    assert len(ax.containers) == 2  # coarse and fine errorbar series
    coarse, fine = ax.containers
    want = report.tables["lambda_coarse"].frame
    np.testing.assert_allclose(np.asarray(coarse.lines[0].get_xdata(), float), want["lambda"])
    np.testing.assert_allclose(
        np.asarray(coarse.lines[0].get_ydata(), float), 100 * want["val_acc_mean"]
    )
    assert coarse.has_yerr and fine.has_yerr
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("coarse" in s for s in labels) and any("fine" in s for s in labels)
    assert any("chosen" in s for s in labels)


def test_figure_files_are_valid_pngs(written, report):
    assert {p.stem for p in (written / "figures").glob("*.png")} == ALL_FIGURES
    for name in ALL_FIGURES:
        path = written / "figures" / f"{name}.png"
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            assert im.format == "PNG"
            w, h = report.figures[name].get_size_inches()
            assert im.size == (round(w * 110), round(h * 110))


# ------------------------------------------------------------------ REPORT.md, determinism


def test_report_md_has_every_section_with_study_numbers(written):
    md = (written / "REPORT.md").read_text()
    for heading in (
        "## 1. Gradient check",
        "## 2. Overfit check",
        "### 3a. One cycle",
        "### 3b. Three cycles",
        "## 4. λ search",
        "### Coarse search",
        "### Fine search",
        "## 5. Final model",
    ):
        assert heading in md
    for study in ("43.20%", "46.90%", "51.50%", "λ ≈ 0.009"):
        assert study in md
    assert "SYNTHETIC DATA" in md and "No results" not in md
    for name in ALL_FIGURES:
        assert f"(figures/{name}.png)" in md
    assert "conf/experiment/final.yaml" in md


def test_report_twice_is_byte_identical(written, results_dir, tmp_path):
    proc = run_report(results_dir, "--out", str(written))
    assert proc.returncode == 0, proc.stderr
    again = tmp_path / "again"
    proc = run_report(results_dir, "--out", str(again))
    assert proc.returncode == 0, proc.stderr
    first = sorted(p.relative_to(written) for p in written.rglob("*") if p.is_file())
    assert first == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in first:
        assert (written / rel).read_bytes() == (again / rel).read_bytes(), rel


# ------------------------------------------------------------------ missing and corrupt


def test_missing_sections_say_so_and_name_the_command(results_dir, tmp_path):
    rep = build_report(gather([results_dir / "c1"]), REPORT_CFG)
    assert set(rep.tables) == {"cyclic_1cycle"}
    assert set(rep.figures) == {"cyclic_1cycle", "lr_schedule"}
    md = rep.markdown
    assert md.count("_No results for") == 5  # gradcheck, overfit, three cycles, λ search, final
    for key in ("gradcheck", "overfit", "cyclic_3cycles", "lambda_search", "final"):
        assert REPORT_CFG.commands[key] in md
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_report(empty, "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert "_No training results yet._" in (tmp_path / "out" / "REPORT.md").read_text()


def test_corrupt_and_incompatible_results_are_listed_and_skipped(results_dir, tmp_path, written):
    root = tmp_path / "r"
    shutil.copytree(results_dir, root)
    bad = {
        "corrupt/result.json": '{"version": 1, "experi',
        "old/result.json": json.dumps(
            {**load_results(results_dir)[0], "version": RESULT_VERSION + 98}
        ),
        "failed/result.json": json.dumps({"status": "failed", "error": "boom"}),
        "empty/result.json": "",
        "nohistory/result.json": json.dumps({**by_experiment(results_dir, "final"), "history": []}),
        "badgrad/result.json": json.dumps(
            {**by_experiment(results_dir, "gradcheck"), "gradcheck": {"reduced": 3}}
        ),
    }
    for rel, text in bad.items():
        (root / rel).parent.mkdir(parents=True)
        (root / rel).write_text(text)
    out = tmp_path / "out"
    proc = run_report(root, "--out", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    md = (out / "REPORT.md").read_text()
    for rel in bad:
        assert f"r/{rel}" in proc.stderr and f"`r/{rel}`" in md
    assert (
        f"incompatible version {RESULT_VERSION + 98}" in md
        and "corrupt JSON" in md
        and "status 'failed'" in md
    )
    assert "malformed 'gradcheck' table" in md and "empty or malformed 'history'" in md
    for name in ALL_TABLES:  # the rest of the report is exactly what the good files give
        assert (out / "tables" / f"{name}.csv").read_bytes() == (
            written / "tables" / f"{name}.csv"
        ).read_bytes()


def test_bad_arguments_fail_in_one_line(tmp_path):
    proc = run_report(tmp_path / "nope", "--out", tmp_path / "out")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: no such folder or file: {tmp_path / 'nope'}"
    ]
    assert not (tmp_path / "out").exists()


# Everything a training (or evaluation) call goes through: the report reads result files only.
TRAINING_MODULES = (
    "mlp.experiment",
    "mlp.train",
    "mlp.sgd",
    "mlp.bundle",
    "mlp.bundle_run",
    "mlp.evaluate",
    "mlp.gradcheck",
    "mlp.model",
    "mlp.data",
    "mlp.sweep.task",
    "mlp.sweep.bundle_task",
    "mlp.sweep.chunk_task",
)
# Run in a fresh interpreter: importing any of TRAINING_MODULES (or a submodule) raises, and at
# the end none of them may be loaded.
NO_TRAINING = """
import sys
BLOCKED = {blocked!r}

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ImportError(f"the report imported {{name}}: it must not train")
        return None

sys.meta_path.insert(0, Refuse())
from mlp.commands import report
out = report.run(sys.argv[1:])
loaded = sorted(m for m in sys.modules if any(m == b or m.startswith(b + ".") for b in BLOCKED))
assert not loaded, loaded
print(out)
"""


def test_report_never_trains(results_dir, tmp_path):
    """The report builds with every training module made to raise on import."""
    script = NO_TRAINING.format(blocked=TRAINING_MODULES)
    out = tmp_path / "rep"
    proc = subprocess.run(
        [sys.executable, "-c", script, str(results_dir), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert Path(proc.stdout.strip().splitlines()[-1]).is_file()
    assert (out / "REPORT.md").is_file()


def test_the_training_guard_catches_an_import(tmp_path):
    """The guard above works: a script that trains under it fails on the import."""
    script = NO_TRAINING.format(blocked=TRAINING_MODULES).replace(
        "from mlp.commands import report", "import mlp.experiment"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode != 0 and "the report imported mlp.experiment" in proc.stderr


def test_report_names_no_absolute_path_of_this_machine(results_dir, tmp_path):
    """Data source and resolved config show the archive's file name, not its folder; the cache
    folder (run placement) is left out; result files are listed relative to where it ran."""
    runs = tmp_path / "runs"
    shutil.copytree(results_dir, runs)
    secret = "/srv/private/datasets"
    for path in runs.rglob("result.json"):
        r = json.loads(path.read_text())
        r["data_source"] = f"cifar10_jpeg: {secret}/cifar10-jpeg.tar.gz"
        r["config"]["data"]["root"] = f"{secret}/cifar10-jpeg.tar.gz"
        r["config"]["data"]["cache_dir"] = "/home/someone/.cache/mlp_study"
        path.write_text(json.dumps(r))
    invocation = {
        "argv": [f"data.root={secret}/cifar10-jpeg.tar.gz"],
        "runs_s": 60.0,
        "steps_s": {},
    }
    (runs / "reproduce.json").write_text(
        json.dumps({"profile": "full", "invocations": [invocation]})
    )
    proc = run_report(runs, "--out", str(tmp_path / "rep"), cwd=Path("/"))
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "rep" / "REPORT.md").read_text()
    assert (
        "Data source: `cifar10_jpeg: cifar10-jpeg.tar.gz`" in md
        and "root: cifar10-jpeg.tar.gz" in md
        and "`mlp-reproduce data.root=cifar10-jpeg.tar.gz`" in md
    )
    for absolute in (secret, "/home/someone", str(tmp_path), str(Path.home())):
        assert absolute not in md, absolute
