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

from mlp.cli import CONF_MODULE, check_groups, compose_error
from mlp.errors import UserError

GROUPS = ("experiment", "data", "launcher", "search", "tracking")
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
        try:
            primary = (
                GlobalHydra.instance()
                .config_loader()
                .load_configuration(
                    config_name=config_name,
                    overrides=list(args.overrides),
                    run_mode=RunMode.MULTIRUN,
                )
            )
        except Exception as exc:
            raise UserError(compose_error(exc)) from None
    return primary
