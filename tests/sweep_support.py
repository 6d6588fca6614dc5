"""Helpers of the sweep tests: run runners/sweep.py as a user would, and real Ray nodes on loopback.

Nodes are `ray start --block` processes in their own process group, stopped by that group
only (never `ray stop`, which would stop every Ray instance on the machine).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from conftest import SMALL_SYNTHETIC

ROOT = Path(__file__).resolve().parent.parent
RAY = str(Path(sys.executable).parent / "ray")
RAY_TMP = Path(tempfile.gettempdir()) / "ray"  # Ray's default root for session folders
# Small synthetic jobs: 1,000 training images, a couple of seconds each at most.
SMALL = [*SMALL_SYNTHETIC, "train.n_s=20", "train.record_points_per_cycle=2"]


def venv_env(**extra) -> dict:
    """The environment of an activated venv: `python` and `ray` are this interpreter's."""
    env = dict(os.environ, **extra)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_sweep(
    tmp: Path,
    *args: str,
    timeout: float = 240,
    env_extra: dict | None = None,
    sweep_dir: str = "sw",
) -> subprocess.CompletedProcess:
    """python runners/sweep.py ARGS with the sweep dir and the result store inside tmp."""
    cmd = [
        sys.executable,
        str(ROOT / "runners" / "sweep.py"),
        *args,
        f"hydra.sweep.dir={tmp / sweep_dir}",
        f"sweep.store={tmp / 'store'}",
    ]
    return subprocess.run(
        cmd,
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=venv_env(**(env_extra or {})),
    )


def joining(node: RayNode) -> list[str]:
    """The overrides that make a sweep join a running node instead of starting its own Ray."""
    return ["launcher=ray_cluster", f"sweep.ray.address={node.address}"]


def rows(sweep_dir: Path) -> list[dict]:
    with open(sweep_dir / "results.csv") as f:
        return list(csv.DictReader(f))


def summary(sweep_dir: Path) -> dict:
    return json.loads((sweep_dir / "sweep.json").read_text())


def results(sweep_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/result.json"))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_token() -> None:
    """Ray ≥ 2.60 clusters use token auth; make sure ~/.ray/auth_token exists (a fresh CI machine)."""
    subprocess.run(
        [RAY, "get-auth-token", "--generate"], capture_output=True, timeout=60, env=venv_env()
    )


class RayNode:
    """One `ray start` node (head, or a worker joining head_address) on 127.0.0.1."""

    def __init__(
        self,
        log: Path,
        num_cpus: int,
        head_address: str | None = None,
        dashboard_port: int | None = None,
        hide: tuple[Path, ...] = (),
        env_extra: dict | None = None,
        extra_args: tuple[str, ...] = (),
    ):
        self.port = free_port() if head_address is None else None
        cmd = [
            RAY,
            "start",
            "--block",
            "--disable-usage-stats",
            f"--num-cpus={num_cpus}",
            "--node-ip-address=127.0.0.1",
            # Ray's default agent port is one fixed number (52365): a second node or instance on
            # this machine would find it taken, and the job API would reach the wrong agent
            f"--dashboard-agent-listen-port={free_port()}",
        ]
        if head_address is None:
            cmd += ["--head", f"--port={self.port}"]
            cmd += (
                [f"--dashboard-port={dashboard_port}", "--dashboard-host=127.0.0.1"]
                if dashboard_port
                else ["--include-dashboard=false"]
            )
        else:
            cmd += [f"--address={head_address}"]
        cmd += list(extra_args)
        self.log = log
        ensure_token()
        env = {
            "RAY_AUTH_MODE": "token",
            **(env_extra or {}),
        }  # Ray's default; a joining node must say so
        if head_address is not None:
            # Nodes on one machine share /tmp/ray, and with it the head's session folder: a
            # joining node's agent then deletes and re-unpacks the working_dir that a job's
            # driver is running from (seen as ModuleNotFoundError). Real nodes have a /tmp each.
            hide = (*hide, RAY_TMP)
        if hide:
            cmd = in_own_mounts(cmd, hide, stash=log.parent / f"{log.stem}.venv")
        self.proc = subprocess.Popen(
            cmd,
            stdout=open(log, "w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=log.parent,
            env=venv_env(**env),
        )
        self.address = f"127.0.0.1:{self.port}" if self.port else head_address

    def wait_started(self, timeout: float = 90) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if "Ray runtime started" in self.log.read_text():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"ray start exited: {self.log.read_text()[-2000:]}")
            time.sleep(0.3)
        raise TimeoutError(f"ray start did not come up: {self.log.read_text()[-2000:]}")

    def terminate(self) -> None:
        """SIGTERM to `ray start --block` alone: it stops its node's processes and exits in about
        2 s. (SIGTERM to the whole group leaves it waiting for processes that are gone.)"""
        try:
            os.kill(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        """terminate(), then SIGKILL to the group for anything left (or after 15 s)."""
        self.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            pass
        self.kill()

    def kill(self) -> None:
        """SIGKILL to the whole node at once (raylet, workers, object store): a node that dies.
        Every process below `ray start` is found first: a worker is not always in its group."""
        import psutil

        try:
            procs = [psutil.Process(self.proc.pid)]
            procs += procs[0].children(recursive=True)
        except psutil.NoSuchProcess:
            procs = []
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        psutil.wait_procs(procs, timeout=5)
        self.proc.wait(5)


def in_own_mounts(cmd: list[str], hide: tuple[Path, ...], stash: Path) -> list[str]:
    """cmd run in a mount namespace of its own where each folder in hide is an empty tmpfs: a
    node that shares no disk with the driver. The venv (wherever it is) is bind-mounted
    back, so the node keeps exactly Python and the dependencies."""
    venv = Path(sys.executable).parent.parent
    q = shlex.quote
    lines = ["set -e", f"mkdir -p {q(str(stash))}", f"mount --bind {q(str(venv))} {q(str(stash))}"]
    lines += [f"mkdir -p {q(str(f))} && mount -t tmpfs tmpfs {q(str(f))}" for f in hide]
    lines += [
        f"mkdir -p {q(str(venv))}",
        f"mount --bind {q(str(stash))} {q(str(venv))}",
        "cd /",
        "exec " + " ".join(q(c) for c in cmd),
    ]
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", "\n".join(lines)]


def stop_nodes(nodes: list[RayNode]) -> None:
    """Stop several nodes at once: all are signalled before any is waited for."""
    for node in nodes:
        node.terminate()
    for node in nodes:
        node.stop()


def wait_for_nodes(address: str, n: int, timeout: float = 60) -> None:
    """Block until the cluster reports n alive nodes (checked from a throwaway driver)."""
    code = (
        "import ray,sys,time\n"
        "from mlp.sweep.ray_session import _probe, _use_token_auth\n"
        f"addr={address!r}\n"
        "_probe(addr, 5) and _use_token_auth(addr)\n"
        "ray.init(address=addr, logging_level='ERROR', log_to_driver=False)\n"
        f"t=time.time()\n"
        f"while len([x for x in ray.nodes() if x['Alive']]) < {n} and time.time()-t < {timeout}: time.sleep(0.3)\n"
        f"sys.exit(0 if len([x for x in ray.nodes() if x['Alive']]) >= {n} else 1)\n"
    )
    subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        timeout=timeout + 30,
        env=venv_env(RAY_AUTH_MODE="token"),  # set before `import ray`, which reads it
        cwd=ROOT,
        capture_output=True,
    )


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def task_pids(ancestor: int, name: str = "ray::mlp_sweep_chunk") -> list[int]:
    """Workers running a sweep job (Ray titles them ray::<task>) under the given process only,
    so a test never touches another Ray instance on the machine."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if not cmd.startswith(name):
            continue
        pid, chain = int(entry.name), int(entry.name)
        for _ in range(4):
            chain = _ppid(chain)
            if chain == ancestor:
                pids.append(pid)
                break
    return pids


RAY_PROCESS_MARKS = (
    b"gcs_server",
    b"raylet",
    b"autoscaler/_private/monitor.py",
    b"log_monitor.py",
    b"default_worker.py",
)


def ray_processes(cwd: Path | None = None) -> set[int]:
    """Pids of Ray's own processes (GCS, raylet, monitors, workers) on this machine, or only
    those running in cwd (Ray's processes inherit the driver's folder; other users' Ray instances
    on a shared machine run elsewhere): compared before and after a sweep, what is new was left
    behind by it."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if any(mark in cmd for mark in RAY_PROCESS_MARKS):
            try:
                if cwd is not None and Path(os.readlink(entry / "cwd")) != Path(cwd).resolve():
                    continue
            except OSError:
                continue
            found.add(int(entry.name))
    return found


def wait_gone(pids: set[int], timeout: float = 10) -> set[int]:
    """The pids among these still alive after up to timeout seconds (exiting takes a moment)."""
    deadline = time.time() + timeout
    while pids and time.time() < deadline:
        pids = {p for p in pids if Path(f"/proc/{p}").exists() and b"State:\tZ" not in _status(p)}
        time.sleep(0.2)
    return pids


def _status(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/status").read_bytes()
    except OSError:
        return b""


try:
    from hydra.experimental.callback import Callback
except ImportError:  # hydra-core < 1.1 had no callbacks; the sweep needs ≥ 1.3 anyway
    Callback = object


class JobLog(Callback):
    """A user's Hydra callback (hydra.callbacks.*), for the tests: one JSON line per job event."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def _write(self, event: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(event) + "\n")

    def on_job_start(self, config, **kwargs) -> None:
        from hydra.core.hydra_config import HydraConfig

        self._write(
            {
                "event": "start",
                "num": HydraConfig.get().job.num,
                "lambda": config["lambda"],
                "seed": config.seed,
                "has_task_function": kwargs.get("task_function") is not None,
            }
        )

    def on_job_end(self, config, job_return, **kwargs) -> None:
        ok = job_return.status.name == "COMPLETED"
        self._write(
            {
                "event": "end",
                "lambda": config["lambda"],
                "seed": config.seed,
                "status": job_return.status.name,
                "cfg_lambda": job_return.cfg["lambda"],
                "val_acc": job_return.return_value["val_acc"] if ok else None,
            }
        )


# The head declares a silent node dead after 3 missed 1 s health checks (Ray's default: 5 × 3 s).
FAST_NODE_DEATH = {"RAY_health_check_period_ms": "1000", "RAY_health_check_failure_threshold": "3"}


@contextlib.contextmanager
def local_cluster(logs: Path, workers: list[dict]) -> Iterator[list[RayNode]]:
    """A head with 0 CPUs (FAST_NODE_DEATH) and one 1-CPU worker node per entry of workers
    (each entry: more RayNode arguments); yields [head, worker 1, ...], stops them all after."""
    head = RayNode(logs / "head.log", num_cpus=0, env_extra=FAST_NODE_DEATH)
    nodes = [head]
    try:
        head.wait_started()
        for k, extra in enumerate(workers, start=1):
            nodes.append(
                RayNode(logs / f"worker{k}.log", num_cpus=1, head_address=head.address, **extra)
            )
        for node in nodes[1:]:
            node.wait_started()
        wait_for_nodes(head.address, len(nodes))
        yield nodes
    finally:
        stop_nodes(nodes)


def search_outcome(sweep_dir: Path) -> dict:
    """A search's lambda_search.json without what differs between two runs of it: the driver's
    wall per rung and the overrides (they hold the sweep's own folders)."""
    out = json.loads((sweep_dir / "lambda_search.json").read_text())
    out.pop("job_overrides")
    for stage in out.get("halving", {}).get("stages", {}).values():
        for r in stage:
            r.pop("wall_s")
    return out


def when_stderr_shows(proc: subprocess.Popen, text: str, action) -> threading.Event:
    """Read proc's stderr (bytes) on a thread; call action() once, the moment `text` appears.
    The returned event is set then."""
    seen = threading.Event()

    def watch() -> None:
        buf = b""
        assert proc.stderr is not None
        while chunk := proc.stderr.read1(4096):  # type: ignore[attr-defined]
            buf = (buf + chunk)[-4096:]
            if text.encode() in buf and not seen.is_set():
                seen.set()
                action()

    threading.Thread(target=watch, daemon=True).start()
    return seen
