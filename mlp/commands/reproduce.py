"""Reproduce the whole study, then its report: `mlp-reproduce [--quick] [key=value ...]`.

Steps, each one sweep (mlp-sweep) so a re-run only does what is missing:
checks (gradcheck, overfit, both cyclic runs) → λ search (coarse + fine, every seed) →
final model with the chosen λ → mlp-report on the runs. key=value overrides
(data=..., data.root=..., launcher=ray_cluster, sweep.* ...) go to every sweep;
profiles are conf/reproduce/{full,quick}.yaml.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from mlp.atomic import write_json_atomic
from mlp.cli import fail
from mlp.errors import UserError
from mlp.report.pipeline import make_plan, read_chosen


def step(name: str, command: str, args: list[str], timings: dict) -> None:
    """Run one command (mlp.commands.<command>) as a subprocess; its failure ends the reproduction."""
    cmd = [sys.executable, "-m", f"mlp.commands.{command}", *args]
    print(f"[reproduce] {name}: mlp-{command} {' '.join(args)}", flush=True)
    start = time.perf_counter()
    rc = subprocess.run(cmd).returncode
    timings[name] = round(time.perf_counter() - start, 2)
    if rc != 0:
        fail(
            f"step '{name}' failed (exit {rc}); fix it and re-run: finished jobs are kept", code=rc
        )
    print(f"[reproduce] {name}: done in {timings[name]:.1f} s", flush=True)


def record(plan, invocation: dict) -> None:
    """Append this invocation's timings to <runs_dir>/reproduce.json (a resumed run adds a second entry)."""
    path = plan.runs_dir / "reproduce.json"
    try:
        old = json.loads(path.read_text()).get("invocations", [])
    except (OSError, ValueError, AttributeError):
        old = []
    write_json_atomic(path, {"profile": plan.profile, "invocations": [*old, invocation]})


def reproduce(argv: list[str]) -> None:
    plan = make_plan(argv, Path.cwd())
    start, timings = time.perf_counter(), dict[str, float]()
    plan.runs_dir.mkdir(parents=True, exist_ok=True)
    step("checks", "sweep", plan.checks, timings)
    step("lambda_search", "sweep", plan.search, timings)
    chosen = read_chosen(plan.runs_dir)
    print(f"[reproduce] chosen λ = {chosen!r}", flush=True)
    step("final", "sweep", plan.final(chosen), timings)
    record(
        plan,
        {
            "argv": argv,
            "chosen_lambda": chosen,
            "steps_s": dict(timings),
            "runs_s": round(time.perf_counter() - start, 2),
        },
    )
    step("report", "report", [str(plan.runs_dir), "--out", str(plan.report_dir)], timings)
    total = time.perf_counter() - start
    print(
        f"[reproduce] profile {plan.profile}: {total:.1f} s in all "
        f"({', '.join(f'{k} {v:.1f} s' for k, v in timings.items())})",
        flush=True,
    )
    print(plan.report_dir / "REPORT.md")


def main() -> None:
    try:
        reproduce(sys.argv[1:])
    except UserError as exc:
        fail(str(exc))


if __name__ == "__main__":
    main()
