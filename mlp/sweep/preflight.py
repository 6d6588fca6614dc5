"""Checks before Hydra starts the sweep, so bad input costs one line and no started job.

Hydra reports composition errors as several lines with a stack-trace hint; composing the
primary config here first (with Hydra's own loader and argument parser) turns them into one.
Per-job errors (a swept key or value) are caught when the launcher composes every job,
also before any job starts.
"""

from __future__ import annotations

from hydra._internal.utils import get_args_parser
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode

from mlp.cli import CONF_MODULE, check_groups
from mlp.errors import UserError
from mlp.sweep.job_check import compose_errors_in_one_line
from mlp.sweep.plan import searching

GROUPS = ("experiment", "data", "launcher", "search", "tracking")
FIRST_VALUES = 100  # per swept key, checked before Ray starts (the launcher checks every job)
INFO_FLAGS = ("help", "hydra_help", "cfg", "info", "shell_completion", "version")


def preflight(argv: list[str], config_name: str):
    """Check argv; returns the composed primary config (None for Hydra's --help/--cfg/... paths)."""
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    args, _ = get_args_parser().parse_known_args(argv)
    if any(getattr(args, flag, None) for flag in INFO_FLAGS):
        return None  # Hydra's own --help/--cfg/... paths
    try:
        parsed = OverridesParser.create().parse_overrides(args.overrides)
    except Exception as exc:
        raise UserError(f"cannot parse overrides: {str(exc).strip().splitlines()[0]}") from None
    check_groups(parsed, GROUPS)
    with initialize_config_module(config_module=CONF_MODULE, version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        with compose_errors_in_one_line():
            primary = loader.load_configuration(
                config_name=config_name, overrides=list(args.overrides), run_mode=RunMode.MULTIRUN
            )
        if args.multirun or searching(primary):
            check_sweep(primary, list(args.overrides), loader)
    return primary


def check_sweep(primary, overrides: list[str], loader) -> None:
    """The sweep's settings, and one job per swept value (the other keys at their first value;
    at most FIRST_VALUES values of a key), composed and checked as the launcher will: a bad value
    costs one line and no Ray start-up. A bad combination is still caught by the launcher, before
    any job starts when the sweep fits in Ray's start-up time."""
    from mlp.sweep.compose import JobComposer
    from mlp.sweep.grid import grid
    from mlp.sweep.job_check import check_job, check_sweep_settings

    check_sweep_settings(primary.sweep)
    parsed = OverridesParser.create(config_loader=loader).parse_overrides(overrides)  # glob() too
    task = [ov for ov in parsed if not ov.is_hydra_override()]
    if searching(primary):
        from mlp.sweep.search import check_search, split_overrides

        check_search(primary.search)
        split_overrides(task)
        return
    dims = grid(task).dims
    composer = JobComposer(primary, loader)
    checked: set[tuple[int, ...]] = set()
    for d, values in enumerate(dims):
        for v in range(min(len(values), FIRST_VALUES)):
            picks = tuple(v if i == d else 0 for i in range(len(dims)))
            if picks in checked:
                continue
            checked.add(picks)
            job = [dim[i] for dim, i in zip(dims, picks, strict=True)]
            num = 0  # the job's number in the sweep (the last key varies fastest)
            for dim, i in zip(dims, picks, strict=True):
                num = num * len(dim) + i
            with compose_errors_in_one_line():
                plain, _ = composer.job(num, job)
            check_job(plain, num, job, primary.sweep.cpus_per_job)
