"""Reproduce the whole study, then its report: `mlp-reproduce [--quick] [key=value ...]`.

Steps, each one sweep (mlp-sweep) so a re-run only does what is missing: checks (gradcheck,
overfit, both cyclic runs), λ search (coarse + fine, every seed), final model with the chosen λ,
then mlp-report on the runs. All three sweeps join one Ray instance that this command starts
(loopback, its own token, as a sweep's private instance): Ray starts once, and the checks run
beside the search, filling the cores its stages leave idle (Ray hands each free CPU to the next
task of either sweep). With launcher=ray_cluster or sweep.ray.address=... the
sweeps join that cluster instead. key=value overrides (data=..., data.root=..., sweep.* ...) go
to every sweep; profiles are conf/reproduce/{full,quick}.yaml.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from mlp.atomic import write_json_atomic
from mlp.cli import fail
from mlp.errors import UserError
from mlp.report.pipeline import make_plan, read_chosen

# A user's own cluster: the sweeps join it, this command starts nothing.
CLUSTER_KEYS = ("launcher", "sweep.ray.address")


class Step:
    """One command (mlp.commands.<command>) run as a subprocess, timed from its start to its
    exit (a thread waits for it, so a step running beside another gets its own wall)."""

    def __init__(self, name: str, command: str, args: list[str]):
        self.name = name
        print(f"[reproduce] {name}: mlp-{command} {' '.join(args)}", flush=True)
        self.start = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "-m", f"mlp.commands.{command}", *args])
        self.wall_s = 0.0
        self.watcher = threading.Thread(target=self._watch, daemon=True)
        self.watcher.start()

    def _watch(self) -> None:
        rc = self.proc.wait()
        self.wall_s = round(time.perf_counter() - self.start, 2)
        if rc == 0:
            print(f"[reproduce] {self.name}: done in {self.wall_s:.1f} s", flush=True)

    def wait(self) -> int:
        self.watcher.join()
        return self.proc.returncode


def finish(steps: list[Step]) -> None:
    """Wait for every step; the first failing one (in plan order) ends the reproduction."""
    codes = [(step, step.wait()) for step in steps]
    for step, rc in codes:
        if rc != 0:
            fail(
                f"step '{step.name}' failed (exit {rc}); fix it and re-run: finished jobs are kept",
                code=rc,
            )


@contextmanager
def shared_ray(user: list[str]):
    """Start the Ray instance every step joins; yields the overrides that join it ([] when the
    user named a cluster). Stopped when the reproduction ends."""
    if any(ov.split("=", 1)[0].lstrip("+~") in CLUSTER_KEYS for ov in user):
        yield []
        return
    from mlp.sweep import ray_session
    from mlp.sweep.data_ship import size_object_store
    from mlp.sweep.preflight import preflight

    master = preflight(user, config_name="sweep")  # a bad override: one line, nothing started
    size_object_store(master)
    ray_session.connect(master.sweep.ray)  # its token stays in this process's environment
    import ray

    address = ray.get_runtime_context().gcs_address
    try:
        yield ["launcher=ray_cluster", f"sweep.ray.address={address}", "sweep.ray.ship_code=false"]
    finally:
        ray_session.disconnect()


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
    start = time.perf_counter()
    plan.runs_dir.mkdir(parents=True, exist_ok=True)
    with shared_ray(plan.user) as join:
        ray_start_s = round(time.perf_counter() - start, 2)
        # the checks beside the search; beside the final instead took 316 s against 270 s
        # (outputs/benchmarks/2026-12-02-reproduce-one-session.md)
        quiet = ["sweep.progress=false"]  # the search's progress line is the one on the terminal
        checks = Step("checks", "sweep", [*plan.checks, *join, *quiet])
        search = Step("lambda_search", "sweep", [*plan.search, *join])
        if search.wait() != 0:
            finish([checks, search])
        chosen = read_chosen(plan.runs_dir)
        print(f"[reproduce] chosen λ = {chosen!r}", flush=True)
        final = Step("final", "sweep", [*plan.final(chosen), *join])
        finish([checks, search, final])
    steps = {s.name: s.wall_s for s in (checks, search, final)}
    record(
        plan,
        {
            "argv": argv,
            "chosen_lambda": chosen,
            "ray_start_s": ray_start_s,
            "steps_s": steps,
            "runs_s": round(time.perf_counter() - start, 2),
        },
    )
    report = Step("report", "report", [str(plan.runs_dir), "--out", str(plan.report_dir)])
    finish([report])
    total = time.perf_counter() - start
    print(
        f"[reproduce] profile {plan.profile}: {total:.1f} s in all (Ray start {ray_start_s:.1f} s, "
        f"{', '.join(f'{k} {v:.1f} s' for k, v in {**steps, 'report': report.wall_s}.items())}; "
        f"the checks ran beside the search)",
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
