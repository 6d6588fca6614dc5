"""The reproduction plan: which sweeps (and in what folders) make every result the report needs.

Kept apart from running them so the commands can be checked without training anything.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from mlp.cli import conf_file
from mlp.errors import UserError

PROFILES = conf_file("reproduce")
# Keys the pipeline sets itself for each step; a user override of them would break the plan.
RESERVED = ("experiment", "seed", "lambda", "hydra.sweep.dir", "hydra.mode")


@dataclass
class Plan:
    profile: str
    runs_dir: Path
    report_dir: Path
    checks: list[str]  # sweep.py arguments
    search: list[str]
    final_args: list[str]  # without lambda=: known only after the search
    user: list[str]  # the overrides every sweep gets (the user's, and the store's folder)

    def final(self, chosen: float) -> list[str]:
        return [*self.final_args, f"lambda={chosen!r}"]


def profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES.glob("*.yaml"))


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are the project's one-line UserError (exit 2 via the caller)."""

    def error(self, message: str):
        raise UserError(message)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="mlp-reproduce", description="Reproduce the study, then its report.")
    p.add_argument("--profile", default="full", help="conf/reproduce/<profile>.yaml (default full)")
    p.add_argument(
        "--quick", "-q", dest="profile", action="store_const", const="quick", help="--profile quick"
    )
    p.add_argument(
        "--runs-dir",
        default=None,
        help="where the runs go (default: the profile's runs_dir_<data>)",
    )
    p.add_argument(
        "--report-dir", default=None, help="where the report goes (default: the profile's)"
    )
    p.add_argument(
        "overrides", nargs="*", metavar="key=value", help="overrides passed to every sweep"
    )
    return p


def split_args(argv: list[str]) -> tuple[str, list[str], dict]:
    """(profile, overrides passed to every sweep, options) from mlp-reproduce's command line."""
    args = parser().parse_intermixed_args(argv)  # overrides before and after --options
    for a in args.overrides:
        if "=" not in a:
            raise UserError(f"cannot read argument {a!r} (expected key=value)")
        key = a.split("=", 1)[0].lstrip("+~")
        if key in RESERVED:
            raise UserError(
                f"{key}= is set by mlp-reproduce for each step (not allowed: {', '.join(RESERVED)})"
            )
    if args.profile not in profiles():
        raise UserError(f"unknown profile '{args.profile}' (allowed: {', '.join(profiles())})")
    return (
        args.profile,
        list(args.overrides),
        {"runs_dir": args.runs_dir, "report_dir": args.report_dir},
    )


def data_tag(overrides: list[str]) -> str:
    for ov in overrides:
        if ov.split("=", 1)[0] == "data":
            return re.sub(r"[^A-Za-z0-9_.-]", "_", ov.split("=", 1)[1]) or "default"
    return "default"


def make_plan(argv: list[str], base: Path) -> Plan:
    profile, user, opts = split_args(argv)
    prof = OmegaConf.load(PROFILES / f"{profile}.yaml")
    runs = Path(opts["runs_dir"] or f"{prof.runs_dir}_{data_tag(user)}")
    runs = runs if runs.is_absolute() else base / runs
    report = opts["report_dir"] or prof.report_dir
    report = runs / "report" if report is None else Path(report)
    report = report if report.is_absolute() else base / report

    def seeds(step) -> str:
        return "seed=" + ",".join(str(int(s)) for s in step.seeds)

    if not any(ov.split("=", 1)[0] == "sweep.store" for ov in user):
        user = [
            *user,
            f"sweep.store={runs / 'store'}",
        ]  # self-contained: resume and timing see only this folder
    c, s, f = prof.checks, prof.search, prof.final
    checks = [
        "-m",
        "experiment=" + ",".join(c.experiments),
        seeds(c),
        f"hydra.sweep.dir={runs / 'checks'}",
        *c.overrides,
        *user,
    ]
    search = [
        "search=lambda",
        seeds(s),
        f"hydra.sweep.dir={runs / 'lambda_search'}",
        *s.overrides,
        *user,
    ]
    final = [
        "-m",
        "experiment=final",
        seeds(f),
        f"hydra.sweep.dir={runs / 'final'}",
        *f.overrides,
        *user,
    ]
    return Plan(profile, runs, report, checks, search, final, user)


def read_chosen(runs_dir: Path) -> float:
    path = Path(runs_dir) / "lambda_search" / "lambda_search.json"
    try:
        return float(json.loads(path.read_text())["chosen_lambda"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"the λ search left no usable {path} ({exc.__class__.__name__})") from None
