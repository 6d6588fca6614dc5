"""What every runner shares: checking config-group choices, absolute paths, one-line errors."""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, open_dict

from mlp.errors import UserError

# The configs ship inside the package (conf/ installs as mlp.conf, see setup.py), so every
# command finds them from any folder, in an editable install or a wheel.
CONF_MODULE = "mlp.conf"
CONFIG_PATH = f"pkg://{CONF_MODULE}"
CHECKED_GROUPS = ("experiment", "data")


def conf_file(*parts: str) -> Path:
    """A file of the shipped configs (e.g. conf_file("report", "report.yaml"))."""
    return Path(str(resources.files(CONF_MODULE).joinpath(*parts)))


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in conf_file(group).glob("*.yaml"))


def check_groups(overrides, groups=CHECKED_GROUPS) -> None:
    """Reject an unknown config-group value (also inside sweep lists) in one line."""
    for ov in overrides:
        group = ov.key_or_group
        if group not in groups or ov.is_delete() or "glob(" in str(ov.input_line):
            continue
        values = (
            list(ov.sweep_string_iterator())
            if ov.is_sweep_override()
            else [ov.get_value_element_as_str()]
        )
        if not ov.is_sweep_override() and isinstance(
            ov.value(), list
        ):  # group=[a,b]: several options
            values = [str(v) for v in ov.value()]
        allowed = group_options(group)
        for v in values:
            if v not in allowed:
                raise UserError(f"unknown {group} '{v}' (allowed: {', '.join(allowed)})")


def check_group_choices(args: list[str]) -> None:
    """Parse command-line overrides one by one (naming the unparsable one), then check experiment=/data=."""
    parser = OverridesParser.create()
    overrides = []
    for arg in (a for a in args if "=" in a and not a.startswith("-")):
        try:
            overrides += parser.parse_overrides([arg])
        except Exception as exc:
            raise UserError(f"cannot parse override '{arg}': {str(exc).splitlines()[0]}") from None
    check_groups(overrides)


def check_composes(args: list[str]) -> None:
    """Compose the config once up front so an unknown or mistyped key is one line, not Hydra's report."""
    from hydra import compose, initialize_config_module

    if "-m" in args or "--multirun" in args:
        return  # sweep lists are the launcher's to expand; each job is checked when it runs
    overrides = [
        a
        for a in args
        if "=" in a and not a.startswith("-") and not a.lstrip("+~").startswith("hydra")
    ]
    try:
        with initialize_config_module(config_module=CONF_MODULE, version_base="1.3"):
            compose(config_name="config", overrides=overrides)
    except Exception as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        detail = next((ln for ln in lines[1:] if ln.startswith("Key ")), "")
        raise UserError(
            " ".join(filter(None, [lines[0] if lines else type(exc).__name__, detail]))
        ) from None


def absolutize_paths(cfg: DictConfig, base: Path) -> None:
    """Make data paths absolute against the directory the user ran from, so tasks elsewhere find them."""
    with open_dict(cfg):
        for key in ("root", "cache_dir"):
            if key in cfg.data and cfg.data[key] is not None:
                p = Path(str(cfg.data[key])).expanduser()
                cfg.data[key] = str(p if p.is_absolute() else (base / p).resolve())


def fail(message: str, code: int = 2) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def compose_error(exc: Exception) -> str:
    """Hydra's multi-line composition errors as one line."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    cause = exc.__cause__
    first = lines[0] if lines else type(exc).__name__
    if first.startswith("Could not override '"):
        key = first.split("'")[1]
        return f"unknown key '{key}' (not in the config; check its spelling)"
    if cause is not None and str(cause).strip():
        first += f" ({str(cause).strip().splitlines()[0]})"
    return first
