"""Successive halving (search=halving): rung jobs continue exactly where the previous rung
stopped, the search keeps the best 1/η, resumes from the store, and its bad settings are one
line. The in-process tests run the core; the sweeps run runners/sweep.py as a user would."""

from __future__ import annotations

import signal
import subprocess
import sys

import numpy as np
import pytest
from conftest import SMALL_SYNTHETIC, compose_cfg
from omegaconf import OmegaConf
from sweep_support import (
    ROOT,
    SMALL,
    joining,
    rows,
    run_sweep,
    search_outcome,
    summary,
    venv_env,
    when_stderr_shows,
)

from mlp.bundle_run import run_bundle
from mlp.errors import UserError
from mlp.experiment import run_experiment
from mlp.result_schema import METRICS
from mlp.sweep.halving import check_halving, keep_count
from mlp.sweep.rung_state import RungStates, rung_keys, state_key
from mlp.sweep.store import ResultStore

BASE = [
    "experiment=lambda_coarse",
    *SMALL_SYNTHETIC,
    "split.val_holdout=100",
    "train.n_s=20",
    "train.cycles=3",
    "train.record=curve",
    "train.record_points_per_cycle=3",  # record every 13 steps: rungs end between record points
]
FINAL = (*METRICS, "test_loss")
SEGMENTS = [(0, 1), (1, 2.5), (2.5, None)]  # cycles; None: the full budget


def rung(start, stop) -> list[str]:
    return [
        f"+train.rung.start={start}",
        f"+train.rung.stop={'null' if stop is None else stop}",
    ]


def assert_same(chained: dict, alone: dict, params: dict, alone_params: dict) -> None:
    for key in FINAL:
        assert chained[key] == alone[key], key
    for name, p in alone_params.items():
        assert params[name].dtype == p.dtype and np.array_equal(params[name], p), name


def full_params(cfg) -> tuple[dict, dict]:
    """A job trained in one go, and its final params (the last rung's end state is the same)."""
    from threadpoolctl import threadpool_limits

    from mlp.data import build_dataset, load_raw
    from mlp.experiment import initial_params
    from mlp.train import train

    with threadpool_limits(cfg.train.blas_threads):  # as run_experiment trains
        ds = build_dataset(load_raw(cfg.data), cfg.split, int(cfg.data.batch_size))
        params = initial_params(cfg, ds)
        train(ds, params, cfg.train, float(cfg["lambda"]), cfg.seed)
    return run_experiment(cfg), params


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_job_trained_rung_by_rung_is_the_job_trained_in_one_go(dtype):
    base = [*BASE, f"dtype={dtype}", "lambda=0.01", "seed=3"]
    alone, alone_params = full_params(compose_cfg(base))
    state, history, steps = None, [], []
    for start, stop in SEGMENTS:
        out = run_experiment(compose_cfg([*base, *rung(start, stop)]), state=state)
        state, history = out["state"], history + out["history"]
        steps.append(out["rung"]["steps"])
    assert steps == [40, 60, 20] and sum(steps) == alone["steps"] == 120
    assert_same(out, alone, state, alone_params)
    assert history == alone["history"]  # the rungs' histories, in order, are the whole curve


def test_a_bundle_trained_rung_by_rung_is_the_bundle_trained_in_one_go():
    """The bundled loop continues exactly too (a bundle of one size throughout; how bundle
    sizes round: test_bundle.py)."""
    lams = [1e-3, 0.05]
    cfgs = [compose_cfg([*BASE, f"lambda={lam}"]) for lam in lams]
    whole = run_bundle(cfgs)
    states: list = [None, None]
    for start, stop in SEGMENTS:
        outs = run_bundle(
            [compose_cfg([*BASE, f"lambda={lam}", *rung(start, stop)]) for lam in lams],
            None,
            states,
        )
        assert all(isinstance(o, dict) and o["bundle"]["size"] == 2 for o in outs)
        states = [o["state"] for o in outs]
    for out, ref in zip(outs, whole, strict=True):
        for key in FINAL:
            assert out[key] == ref[key], key


def test_a_rung_needs_its_start_state_and_checks_it():
    cfg = compose_cfg([*BASE, "lambda=0.01", *rung(1, 2)])
    with pytest.raises(UserError, match=r"train.rung.start=1 needs the params"):
        run_experiment(cfg)
    first = run_experiment(compose_cfg([*BASE, "lambda=0.01", *rung(0, 1)]))
    wrong = dict(first["state"], W1=first["state"]["W1"].astype(np.float64))
    with pytest.raises(
        UserError, match=r"rung state W1 is float64 \(50, 3072\); the run needs float32"
    ):
        run_experiment(cfg, state=wrong)


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (rung(0, 4), r"0 ≤ start < stop ≤ train.cycles=3"),
        (rung(2, 1), r"0 ≤ start < stop ≤ train.cycles=3"),
        (["+train.rung.at=1"], r"train.rung.at is not a rung key"),
        (
            ["train.schedule=constant", "train.epochs=1", *rung(0, 1)],
            r"needs train.schedule=cyclic",
        ),
    ],
)
def test_bad_rungs_are_one_line(extra, says):
    with pytest.raises(UserError, match=says):
        run_experiment(compose_cfg([*BASE, "lambda=0.01", *extra]))


@pytest.mark.parametrize(
    ("halving", "says"),
    [
        ({"eta": 1, "rungs": [1]}, r"search.halving.eta=1 must be a number > 1"),
        ({"eta": 3, "rungs": []}, r"search.halving.rungs is empty"),
        ({"eta": 3, "rungs": [2, 1]}, r"must increase strictly"),
        ({"eta": 3, "rungs": [0]}, r"each rung is a number of cycles > 0"),
    ],
)
def test_bad_halving_settings_are_one_line(halving, says):
    with pytest.raises(UserError, match=says):
        check_halving(halving)


def test_keep_count_is_the_best_one_over_eta_and_at_least_one():
    assert [keep_count(n, 3) for n in (1, 2, 3, 6, 10)] == [1, 1, 1, 2, 3]


def test_state_keys_name_the_config_and_the_cycle_not_the_rung():
    def plain(*extra):
        return OmegaConf.to_container(compose_cfg([*BASE, "lambda=0.01", *extra]), resolve=True)

    a_in, a_out = rung_keys(plain(*rung(1, 2)), "fp")
    b_in, b_out = rung_keys(plain(*rung(0, 1)), "fp")
    c_in, c_out = rung_keys(plain(*rung(2, None)), "fp")
    assert b_in is None and b_out == a_in and a_out == c_in  # ends meet starts
    assert c_out == state_key(plain(), "fp", 3) and len({a_out, b_out, c_out}) == 3
    assert rung_keys(plain(*rung(0, 1)), "other data")[1] != b_out


def test_states_are_written_whole_and_a_missing_one_is_one_line(tmp_path):
    states = RungStates(tmp_path)
    state = {n: np.arange(4, dtype=np.float32) for n in ("W1", "b1", "W2", "b2")}
    states.save("k", state)
    assert states.has("k") and [p.name for p in (tmp_path / "rung_state").iterdir()] == ["k.npz"]
    assert all(np.array_equal(v, state[n]) for n, v in states.load("k", "job 1").items())
    with pytest.raises(UserError, match=r"job 2 starts from rung state .*missing.npz"):
        states.load("missing", "job 2")


# ---- the search, as a user runs it --------------------------------------------------------
SEARCH = [
    "search=halving",
    *SMALL,
    "split.val_holdout=100",
    "search.coarse.grid=[1e-4,1e-3,1e-2,1e-1,1]",
    "search.fine.n=4",
    "seed=0,1",
    "sweep.progress=false",
]
# coarse: 5 λ → 1 → 1; fine: 4 λ → 1 → 1 (η = 3), two seeds each
RUNG_JOBS = [10, 2, 2, 8, 2, 2]


@pytest.fixture(scope="module")
def searched(tmp_path_factory, shared_ray):
    """One whole search (the reference of the tests below), on the suite's shared Ray head."""
    tmp = tmp_path_factory.mktemp("halving")
    proc = run_sweep(tmp, *SEARCH, *joining(shared_ray))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp, search_outcome(tmp / "sw")


@pytest.mark.ray
@pytest.mark.slow
def test_survivors_are_the_jobs_trained_alone_and_a_rerun_trains_nothing(searched, shared_ray):
    tmp, outcome = searched
    stages = outcome["halving"]["stages"]
    assert [r["jobs"] for st in stages.values() for r in st] == RUNG_JOBS
    assert [len(r["kept"]) for st in stages.values() for r in st] == [1, 1, 0, 1, 1, 0]
    lone = run_sweep(  # the chosen λ trained in one go, each seed, as plain lambda_fine jobs
        tmp,
        "-m",
        "experiment=lambda_fine",
        *SMALL,
        "split.val_holdout=100",
        f"lambda={outcome['chosen_lambda']!r}",
        "seed=0,1",
        "sweep.progress=false",
        *joining(shared_ray),
        sweep_dir="lone",
    )
    assert lone.returncode == 0, lone.stderr[-3000:]
    store = ResultStore(tmp / "store")
    stored = store.results(store.index()).values()
    by = {
        (r["experiment"], r["lambda"], r["seed"], r.get("rung", {}).get("stop_step")): r
        for r in stored
    }
    for seed in (0, 1):
        survivor = by[("lambda_fine", outcome["chosen_lambda"], seed, 120)]  # the last rung
        alone = by[("lambda_fine", outcome["chosen_lambda"], seed, None)]
        assert survivor["rung"]["start_step"] == 80 and alone["steps"] == 120
        for key in FINAL:
            assert survivor[key] == alone[key], key
    steps = sum(r["model_steps"] for st in stages.values() for r in st)
    assert outcome["halving"]["model_steps"] == steps == (10 + 2 + 2 + 8 + 2 + 2) * 40

    again = run_sweep(tmp, *SEARCH, *joining(shared_ray), sweep_dir="again")
    assert again.returncode == 0, again.stderr[-3000:]
    counts = summary(tmp / "again")
    assert counts["ran"] == 0 and counts["cached"] == sum(RUNG_JOBS)
    assert search_outcome(tmp / "again") == outcome
    assert {r["status"] for r in rows(tmp / "again")} == {"cached"}


LABELS = ["coarse-rung2", "coarse-rung3", "fine-rung1", "fine-rung2", "fine-rung3"]


@pytest.mark.ray
@pytest.mark.slow
# the boundary between stages, and a stage's later rung that is also the search's last (the
# other rungs are of the same kinds)
@pytest.mark.parametrize("label", ["fine-rung1", "fine-rung3"])
def test_a_search_stopped_as_a_rung_begins_resumes_from_the_rungs_before(
    searched, shared_ray, tmp_path, label
):
    """SIGTERM the driver the moment rung `label` starts; the same command then trains only that
    rung and the later ones, and ends with the uninterrupted search's outcome."""
    _, reference = searched
    args = [*SEARCH, *joining(shared_ray), "sweep.progress=true", "sweep.store_flush_rows=1"]
    cmd = [sys.executable, str(ROOT / "runners" / "sweep.py"), *args]
    cmd += [f"hydra.sweep.dir={tmp_path / 'sw'}", f"sweep.store={tmp_path / 'store'}"]
    driver = subprocess.Popen(
        cmd, cwd=tmp_path, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=venv_env()
    )
    seen = when_stderr_shows(driver, f"[{label}]", lambda: driver.send_signal(signal.SIGTERM))
    try:
        driver.wait(timeout=240)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert seen.is_set() and driver.returncode == 130
    before = LABELS.index(label) + 1  # rungs finished before the stop
    done = sum(RUNG_JOBS[:before])
    assert len(list((tmp_path / "store" / "rung_state").glob("*.npz"))) >= done

    resumed = run_sweep(tmp_path, *SEARCH, *joining(shared_ray), sweep_dir="sw2")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    counts = summary(tmp_path / "sw2")
    assert counts["cached"] >= done and counts["ran"] + counts["cached"] == sum(RUNG_JOBS)
    ladder = ["coarse-rung1", *LABELS]
    for row in rows(tmp_path / "sw2"):  # every job of a finished rung came from the store
        if ladder.index(row["stage"]) < before:
            assert row["status"] == "cached", row
    assert search_outcome(tmp_path / "sw2") == reference


@pytest.mark.ray
def test_a_halving_search_with_a_rung_past_the_budget_stops_before_any_job(tmp_path, shared_ray):
    proc = run_sweep(tmp_path, *SEARCH, "search.halving.rungs=[1,3]", *joining(shared_ray))
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "0 ≤ start < stop ≤ train.cycles=3" in lines[0], proc.stderr
    assert not (tmp_path / "store" / "rung_state").exists()


@pytest.mark.ray
@pytest.mark.slow
def test_the_report_compares_the_halving_search_with_the_full_one(searched, shared_ray):
    from mlp.report.build import build_report
    from mlp.report.gather import gather

    tmp, outcome = searched
    full = run_sweep(
        tmp,
        *[a for a in SEARCH if a != "search=halving"],
        "search=lambda",
        *joining(shared_ray),
        sweep_dir="full",
    )
    assert full.returncode == 0, full.stderr[-3000:]
    cfg = OmegaConf.load(ROOT / "conf" / "report" / "report.yaml")
    gathered = gather([tmp / "sw", tmp / "full"])
    assert gathered.rungs == sum(RUNG_JOBS)  # rung results: parts of runs, not table rows
    assert not any(gathered.runs["path"].str.contains("/sw/")) and not gathered.problems
    report = build_report(gathered, cfg)
    text = report.markdown
    section = text[text.index("### 4b. λ search by successive halving") :]
    full_steps = outcome["halving"]["full_model_steps"]
    assert full_steps == (5 + 4) * 2 * 120  # every λ × seed tried, to the full budget
    assert f"| full search | {full_steps:,} |" in section
    assert f"| successive halving | {outcome['halving']['model_steps']:,} |" in section
    assert f"{outcome['chosen_lambda']:.6g}" in section
    ratio = full_steps / outcome["halving"]["model_steps"]
    assert f"Model-steps: {ratio:.2f}× fewer; wall: " in section
    fig = report.figures["lambda_halving"]
    assert [ax.get_title() for ax in fig.axes] == ["coarse stage", "fine stage"]


def test_each_rung_keeps_the_best_third_by_the_mean_over_seeds(tmp_path, capsys):
    """The sweeper's search=halving path with a stand-in launcher (no Ray; val acc peaks at 1e-2)."""
    from test_sweep_search import run_search

    grid = "search.coarse.grid=[1e-4,1e-3,1e-2,1e-1,1,10]"
    outcome, out = run_search(tmp_path, capsys, "search=halving", grid, "seed=0,1")
    stages = outcome["halving"]["stages"]
    coarse = [(r["lambdas"], r["kept"], r["jobs"]) for r in stages["coarse"]]
    assert coarse == [
        ([1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0], [1e-2, 1e-3], 12),
        ([1e-3, 1e-2], [1e-2], 4),
        ([1e-2], [], 2),
    ]
    fine = stages["fine"]
    assert [len(r["lambdas"]) for r in fine] == [10, 3, 1] and [r["jobs"] for r in fine] == [
        20,
        6,
        2,
    ]
    assert [(r["start_cycles"], r["stop_cycles"]) for r in fine] == [(0, 1), (1, 2), (2, None)]
    assert outcome["coarse_best_lambda"] == 1e-2
    assert fine[-1]["lambdas"] == [outcome["chosen_lambda"]]
    assert [row["rung"] for row in outcome["coarse"]] == [1, 2, 3, 1, 1, 1]
    assert f"chosen λ = {outcome['chosen_lambda']:.6g}" in out


def test_the_sweep_plan_counts_every_rung(tmp_path):
    """What Hydra callbacks (tracking) are told before the search starts."""
    from test_tracking_jobs import sweep_config

    from mlp.sweep.plan import sweep_plan

    plan = sweep_plan(sweep_config(tmp_path, "search=halving"))
    assert plan == [
        ("coarse-rung1", 18),
        ("coarse-rung2", 6),
        ("coarse-rung3", 3),
        ("fine-rung1", 30),
        ("fine-rung2", 9),
        ("fine-rung3", 3),
    ]
