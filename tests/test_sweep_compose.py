"""The driver composes once per set of config-group choices and derives each job from that
(mlp.sweep.compose); every derived job must equal Hydra's own full compose of the same overrides."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import OmegaConf

from mlp.cli import compose_error, conf_file, group_options
from mlp.sweep.compose import JobComposer, _fast_override, _FastPath, _references, _Untrusted

pytestmark = pytest.mark.slow  # ~220 full Hydra composes

EXPERIMENTS = group_options("experiment")
# Jobs as a sweep produces them, plus the cases a value override can hit: interpolations into
# the hydra node, lambda=null (lambda_fine draws it in the task), +/++ additions, a group switch
# between jobs, a key set twice, a dict value, a key swept first; each with the path job() must
# take (fast: the resolved template plus the job's scalars; slow: the values applied to it).
FAST, SLOW, EITHER = "fast", "slow", "either"
JOBS = [
    (["seed=0"], FAST),
    (["seed=1"], FAST),
    (["seed=2", "lambda=null"], FAST),
    (["lambda=0.5", "seed=3"], FAST),
    (["data=synthetic", "data.n_train=1000", "seed=4"], FAST),
    (["data=synthetic", "data.n_train=1000", "seed=5"], FAST),
    (["seed=6", "train.n_s=3", "train.n_s=4"], SLOW),
    (["+extra.tag=a", "seed=7"], FAST),
    (["++train.new_key=2", "seed=8"], FAST),
    (["seed=9", "+note=${hydra.job.num}"], SLOW),
    (["seed=10", "train={cycles: 2}"], SLOW),
    (["seed=11"], FAST),
    (["hydra.sweep.subdir=s${seed}", "seed=12"], SLOW),
    (["seed=13", "split.train_batches=[1,2]"], SLOW),
    (["lambda=1", "seed=14"], FAST),  # an int stays an int (as Hydra types it)
    (["lambda=1.0", "++seed=15", "++train.eta=.5"], FAST),  # ++ on existing keys
    # new nested dicts; + on a key that is null; copy-on-write three levels down
    (
        [
            "lambda=1e-5",
            "seed=-16",
            "+extra.deep.key=-3",
            "+sweep.max_in_flight=8",
            "sweep.ray.num_cpus=2",
        ],
        FAST,
    ),
    # strings, bools, None; an interpolation replaced (data.cache_dir: nothing reads it)
    (
        [
            "name=renamed",
            "dtype='float32'",
            "split.val_batch=true",
            "train.n_s=null",
            "train.record_every=0.",
            "data.cache_dir=elsewhere",
            "seed=17",
        ],
        FAST,
    ),
    (["paths.output_dir=elsewhere", "seed=18"], SLOW),  # sweep.store reads it
    (["paths.cache_dir=elsewhere", "seed=19"], EITHER),  # read by data.cache_dir (cifar10 data)
    (["+paths=1", "seed=20"], SLOW),  # + on a dict: Hydra's rules (here: not allowed)
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


def _types(value):
    """The value with every leaf replaced by its type."""
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items() if k not in ("hydra", "unresolved")}
    if isinstance(value, list):
        return [_types(v) for v in value]
    return type(value)


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
    for num, (extra, path) in enumerate(JOBS * 2):  # twice: what a job changed must be undone
        overrides = [f"experiment={experiment}", *extra]
        try:
            want = _full(loader, master, num, overrides, composed)
        except Exception as exc:  # noqa: BLE001  (Hydra refuses it: so must the composer)
            with pytest.raises(Exception) as ours:
                composer.job(num, overrides)
            assert compose_error(ours.value) == compose_error(exc), overrides
            continue
        fast_jobs = composer.fast_jobs
        task, subdir = composer.job(num, overrides)
        if path != EITHER:
            assert (composer.fast_jobs > fast_jobs) == (path == FAST), (experiment, overrides)
        assert task == {k: v for k, v in want.items() if k not in ("hydra", "unresolved")}, (
            experiment,
            overrides,
        )
        assert _types(task) == _types(want), overrides  # 1 and 1.0 are equal, not the same
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
    then = ["experiment=cyclic_1cycle", "seed=1", "split.train_batches=[1]"]  # the slow path
    task, _ = composer.job(1, then)
    want = _full(loader, master, 1, then)
    assert task == {k: v for k, v in want.items() if k not in ("hydra", "unresolved")}


@pytest.mark.parametrize(
    "first",
    [
        ["+seed.x=1"],  # a value made a dict
        ["seed.x={a: 1}"],  # fails after it made seed a dict
        ["+paths.x=???"],  # a new key whose value is missing
        ["data.download=[1,2]"],  # fails: Hydra's "Error merging override"
    ],
)
def test_the_slow_path_undoes_what_a_job_changed(loader, first):
    master = loader.load_configuration("sweep", ["experiment=final"], run_mode=RunMode.MULTIRUN)
    composer = JobComposer(master, loader)
    for num, extra in enumerate([first, ["split.train_batches=[1]"]]):
        overrides = ["experiment=final", *extra]
        try:
            want = _full(loader, master, num, overrides)
        except Exception as exc:  # noqa: BLE001
            with pytest.raises(Exception) as ours:
                composer.job(num, overrides)
            assert compose_error(ours.value) == compose_error(exc)
            continue
        task, _ = composer.job(num, overrides)
        assert task == {k: v for k, v in want.items() if k not in ("hydra", "unresolved")}
    assert composer.fast_jobs == 0


@pytest.mark.parametrize(
    "extra",
    [
        ["trian.epochs=1"],  # unknown key (compose_error: "unknown key ...")
        ["seed.x=1"],  # below a scalar
        ["+seed=5"],  # + on an existing key
        ["+lambda=0.5", "seed=1"],
        ["train=3"],  # a scalar for a dict
    ],
)
def test_value_override_errors_are_hydras(loader, extra):
    master = loader.load_configuration("sweep", ["experiment=final"], run_mode=RunMode.MULTIRUN)
    composer = JobComposer(master, loader)
    overrides = ["experiment=final", *extra]
    try:
        want = _full(loader, master, 0, overrides)
    except Exception as exc:  # noqa: BLE001
        with pytest.raises(Exception) as ours:
            composer.job(0, overrides)
        assert compose_error(ours.value) == compose_error(exc)
    else:
        task, _ = composer.job(0, overrides)
        assert task == {k: v for k, v in want.items() if k not in ("hydra", "unresolved")}
    if extra == ["trian.epochs=1"]:
        assert compose_error(ours.value).startswith("unknown key 'trian.epochs'")


def test_jobs_share_nothing_the_driver_changes(loader, tmp_path):
    """launch.SweepRunner.prepare rewrites data.root/data.cache_dir and sets
    train.blas_threads in the dict job() returns: no other job may see that."""
    master = loader.load_configuration("sweep", ["experiment=final"], run_mode=RunMode.MULTIRUN)
    composer = JobComposer(master, loader)
    one, _ = composer.job(0, ["experiment=final", "seed=1"])
    two, _ = composer.job(1, ["experiment=final", "seed=2"])
    assert composer.fast_jobs == 2
    for key, value in one.items():
        if isinstance(value, dict):
            assert value is not two[key], key
    before = {k: v.copy() if isinstance(v, dict) else v for k, v in two.items()}
    data = one["data"]
    for key in ("root", "cache_dir"):  # what prepare does
        if data.get(key) is not None:
            data[key] = str(tmp_path / Path(str(data[key])).name)
    one.setdefault("train", {})["blas_threads"] = 7
    assert two == before
    three, _ = composer.job(2, ["experiment=final", "seed=2"])
    assert three == before
    want = _full(loader, master, 2, ["experiment=final", "seed=2"])
    assert three == {k: v for k, v in want.items() if k not in ("hydra", "unresolved")}


def test_an_environment_variable_the_config_reads_is_read_again(loader, monkeypatch):
    master = loader.load_configuration("sweep", ["experiment=final"], run_mode=RunMode.MULTIRUN)
    composer = JobComposer(master, loader)
    for num, where in enumerate(["/tmp/cache-a", "/tmp/cache-b"]):
        monkeypatch.setenv("MLP_CACHE_DIR", where)
        task, _ = composer.job(num, ["experiment=final", f"seed={num}"])
        assert task["paths"]["cache_dir"] == where
        want = _full(loader, master, num, ["experiment=final", f"seed={num}"])
        assert task == {k: v for k, v in want.items() if k not in ("hydra", "unresolved")}
    assert composer.fast_jobs == 2


def test_references_of_an_interpolation():
    assert _references("${paths.cache_dir}") == ({"paths.cache_dir"}, set())
    assert _references("${paths.output_dir}/sweeps/_store") == ({"paths.output_dir"}, set())
    assert _references("${oc.env:CIFAR10_ROOT,${paths.data_dir}/cifar10}") == (
        {"paths.data_dir"},
        {"CIFAR10_ROOT"},
    )
    assert _references("${oc.env:MLP_CACHE_DIR,'~/.cache/mlp_study'}") == (set(), {"MLP_CACHE_DIR"})
    assert _references("a${x}b${ y.z }") == ({"x", "y.z"}, set())
    for text in [
        "${.x}",  # relative
        "${..x}",
        "${now:%Y-%m-%d}",  # not pure
        "${mine:1}",  # a custom resolver
        "${oc.decode:${x}}",
        "${hydra:job.num}",
        "${a[0]}",
        "${${k}}",
        "${oc.env:${name}}",
    ]:
        with pytest.raises(_Untrusted):
            _references(text)


def test_fast_path_of_a_small_config():
    parser = OverridesParser.create()

    def job(fast, *lines):
        return fast.job([parser.parse_override(x) for x in lines])

    plain = {"a": 1, "b": "${a}", "c": {"d": 2, "e": [1]}, "f": None}
    fast = _FastPath.of(OmegaConf.create(plain), plain)
    assert fast is not None and fast.deps == ("a",)
    assert job(fast, "a=2") is None  # read by b: the slow path
    out = job(fast, "c.d=3", "+f=4", "++g.h=x")
    assert out == {"a": 1, "b": 1, "c": {"d": 3, "e": [1]}, "f": 4, "g": {"h": "x"}}
    assert fast.resolved["c"]["d"] == 2  # the template is not touched
    assert job(fast, "+a=2") is None  # Hydra refuses it: the slow path raises
    assert job(fast, "c.x=2") is None  # unknown key: idem
    assert job(fast, "c=2") is None  # a dict
    assert job(fast, "c.d=3", "c.d=4") is None  # a key twice
    assert job(fast, "c.e=[2]") is None  # not a scalar
    for untrusted in ("${now:%H}", "${.a}", "${hydra.job.num}", "${hydra:job.num}"):
        plain = {"a": 1, "b": untrusted}
        assert _FastPath.of(OmegaConf.create(plain), plain) is None, untrusted


def test_fast_override_parser_types_numbers_as_hydra_does():
    parser = OverridesParser.create()
    keys = ["seed", "lambda", "a.b", "_x.y_1", "true", "null", "inf", "data.n_train"]
    values = ["0", "1", "-3", "+7", "17", "1.0", "1.", ".5", "-.5", "0.01", "1e-5", "1E5", "1.e5",
              "2.5e+3", "-0", "-0.0", "123456789012345678901234567890", "1e999"]  # fmt: skip
    lines = [f"{p}{k}={v}" for p in ("", "+", "++") for k in keys for v in values]
    rng = random.Random(0)
    chars = "0123456789+-.eE_"
    for _ in range(3000):
        value = "".join(rng.choice(chars) for _ in range(rng.randint(1, 7)))
        lines.append(f"{rng.choice(['', '+', '++'])}{rng.choice(keys)}={value}")
    fast_count = 0
    for line in lines:
        fast = _fast_override(line)
        if fast is None:
            continue
        fast_count += 1
        want = parser.parse_override(line)
        assert fast == want, line
        assert type(fast.value()) is type(want.value()), line
        assert repr(fast.value()) == repr(want.value()), line
    assert fast_count > len(keys) * len(values) * 3  # every hand-picked line, some random ones
    declined = ["seed=1_000", "x=inf", "x=nan", "x=-inf", "x=01", "x=1e", "x=abc", "x=[1]",
                "x=1,2", "x=range(3)", "x= 1", "x=1 ", "x=true", "x=null", "a.0=1", "~x=1",
                "x@p=1", "g/x=1", "+++x=1", "x='1'", "x=${y}", "x=0x10"]  # fmt: skip
    for line in declined:
        assert _fast_override(line) is None, line
