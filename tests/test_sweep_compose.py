"""The driver composes once per set of config-group choices and derives each job from that
(mlp.sweep.compose); every derived job must equal Hydra's own full compose of the same overrides."""

from __future__ import annotations

import pytest
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode
from omegaconf import OmegaConf

from mlp.cli import conf_file, group_options
from mlp.sweep.compose import JobComposer

pytestmark = pytest.mark.slow  # ~220 full Hydra composes

EXPERIMENTS = group_options("experiment")
# Jobs as a sweep produces them, plus the cases a value override can hit: interpolations into
# the hydra node, lambda=null (lambda_fine draws it in the task), +/++ additions, a group switch
# between jobs, a key set twice, a dict value, a key swept first.
JOBS = [
    ["seed=0"],
    ["seed=1"],
    ["seed=2", "lambda=null"],
    ["lambda=0.5", "seed=3"],
    ["data=synthetic", "data.n_train=1000", "seed=4"],
    ["data=synthetic", "data.n_train=1000", "seed=5"],
    ["seed=6", "train.n_s=3", "train.n_s=4"],
    ["+extra.tag=a", "seed=7"],
    ["++train.new_key=2", "seed=8"],
    ["seed=9", "+note=${hydra.job.num}"],
    ["seed=10", "train={cycles: 2}"],
    ["seed=11"],
    ["hydra.sweep.subdir=s${seed}", "seed=12"],
    ["seed=13", "split.train_batches=[1,2]"],
]


@pytest.fixture(scope="module")
def loader():
    with initialize_config_dir(config_dir=str(conf_file()), version_base="1.3"):
        yield GlobalHydra.instance().config_loader()


def _full(loader, master, num: int, overrides: list[str], cache: dict | None = None) -> dict:
    """Hydra's own compose of the job (one per distinct override list: the second pass reuses it)."""
    key = tuple(overrides)
    if cache is None or key not in cache:
        composed = loader.load_sweep_config(master, overrides)
        if cache is None:
            cache = {}
        cache[key] = composed
    cfg = cache[key]
    cfg.hydra.job.num, cfg.hydra.job.id = num, str(num)
    return _view(cfg)


def _view(cfg) -> dict:
    """The job's keys and the hydra parts a job reads, resolved; the whole config unresolved
    (hydra.runtime.output_dir is only set when Hydra runs a job, so not all of it resolves)."""
    out = {
        k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k]
        for k in cfg
        if k != "hydra"
    }
    out["hydra"] = {
        k: OmegaConf.to_container(cfg.hydra[k], resolve=True)
        for k in ("job", "sweep", "overrides", "run")
    }
    out["hydra"]["choices"] = OmegaConf.to_container(cfg.hydra.runtime.choices)
    out["unresolved"] = OmegaConf.to_container(cfg, resolve=False)
    return out


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_derived_jobs_equal_a_full_compose(loader, experiment):
    master = loader.load_configuration(
        "sweep", [f"experiment={experiment}", "seed=0,1"], run_mode=RunMode.MULTIRUN
    )
    str(master.hydra.sweep.dir)  # as the launcher does: ${now:} is cached on the master, once
    composer, composed = JobComposer(master, loader), {}
    for num, extra in enumerate(JOBS * 2):  # twice: what a job changed must be undone
        overrides = [f"experiment={experiment}", *extra]
        want = _full(loader, master, num, overrides, composed)
        task, subdir = composer.job(num, overrides)
        assert task == {k: v for k, v in want.items() if k not in ("hydra", "unresolved")}, (
            experiment,
            overrides,
        )
        assert subdir == str(want["hydra"]["sweep"]["subdir"])
        with composer.applied(num, overrides) as cfg:
            assert _view(cfg) == want, (experiment, overrides)
    assert composer.full_composes == 3  # experiment; with data=synthetic; with hydra.sweep.subdir


def test_bad_value_override_fails_like_hydra_and_leaves_the_template_clean(loader):
    master = loader.load_configuration(
        "sweep", ["experiment=cyclic_1cycle"], run_mode=RunMode.MULTIRUN
    )
    composer = JobComposer(master, loader)
    with pytest.raises(Exception, match="Could not override 'trian.epochs'"):
        composer.job(0, ["experiment=cyclic_1cycle", "seed=3", "trian.epochs=1"])
    task, _ = composer.job(1, ["experiment=cyclic_1cycle", "seed=1"])
    want = _full(loader, master, 1, ["experiment=cyclic_1cycle", "seed=1"])
    assert task == {k: v for k, v in want.items() if k not in ("hydra", "unresolved")}
