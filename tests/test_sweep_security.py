"""Security of sweeps (docs/security.md), with real Ray on 127.0.0.1 only: a one-machine sweep's
private instance listens on loopback alone and wants its own token; a cluster without token
authentication is joined only when allowed; a token-auth cluster is joined with the user's token;
no file a sweep writes holds a token."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import psutil
import pytest
from sweep_support import ROOT, SMALL, RayNode, results, rows, run_sweep, task_pids, venv_env

from mlp.errors import UserError
from mlp.sweep import ray_session

# Jobs long enough (a few seconds each on a busy 2-core machine) to look at the instance while they run.
LONG_JOBS = [*SMALL[:-2], "train.n_s=250", "train.record_points_per_cycle=2"]
# A single node whose address is loopback (Ray turns --node-ip-address=127.0.0.1 into the machine's
# address otherwise); the drivers joining it need it too, to find their node at 127.0.0.1.
ON_LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def _instance_processes(driver: psutil.Process) -> list[psutil.Process]:
    """Every process of THIS sweep's Ray instance: the driver's process tree, plus any process
    naming the instance's session folder (in case one was re-parented); never another instance."""
    procs = {p.pid: p for p in [driver, *driver.children(recursive=True)]}
    sessions = {part for p in procs.values() for part in _cmdline(p) if "/session_" in part}
    names = {s.split("/session_", 1)[1].split("/", 1)[0] for s in sessions}
    for p in psutil.process_iter():
        if p.pid not in procs and any(
            f"session_{n}" in part for n in names for part in _cmdline(p)
        ):
            procs[p.pid] = p
    return list(procs.values())


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []


def _listening(procs: list[psutil.Process]) -> list[tuple[str, int, str]]:
    found = []
    for p in procs:
        try:
            conns = p.net_connections("inet")
            name = p.name()
        except psutil.Error:  # exited meanwhile
            continue
        found += [
            (c.laddr.ip, c.laddr.port, name)
            for c in conns
            if c.status == psutil.CONN_LISTEN or (c.type == socket.SOCK_DGRAM and c.laddr)
        ]  # TCP, UDP
    return found


def _loopback(ip: str) -> bool:
    return ip.removeprefix("::ffff:").startswith("127.") or ip == "::1"


def _gcs_call(port: int, token: str | None) -> grpc.StatusCode:
    """Ask the GCS on 127.0.0.1:port for its cluster id, with or without a bearer token."""
    with grpc.insecure_channel(
        f"127.0.0.1:{port}", options=[("grpc.enable_http_proxy", 0)]
    ) as channel:
        call = channel.unary_unary(
            ray_session.GCS_PROBE, request_serializer=lambda b: b, response_deserializer=lambda b: b
        )
        try:
            call(
                b"", timeout=10, metadata=[("authorization", f"Bearer {token}")] if token else None
            )
        except grpc.RpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK


def _files_holding(folder: Path, secret: str) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


@pytest.mark.ray
@pytest.mark.slow
def test_private_instance_listens_on_loopback_only_and_wants_its_own_token(tmp_path):
    cmd = [
        sys.executable,
        str(ROOT / "runners" / "sweep.py"),
        "-m",
        "experiment=cyclic_1cycle",
        *LONG_JOBS,
        "seed=0,1,2,3",
        "sweep.ray.num_cpus=2",
        f"hydra.sweep.dir={tmp_path / 'sw'}",
        f"sweep.store={tmp_path / 'store'}",
    ]
    sweep = subprocess.Popen(
        cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=venv_env()
    )
    try:
        deadline = time.time() + 120
        while not task_pids(sweep.pid) and time.time() < deadline and sweep.poll() is None:
            time.sleep(0.2)
        assert task_pids(sweep.pid), "no sweep job started"
        procs = _instance_processes(psutil.Process(sweep.pid))
        sockets = _listening(procs)
        names = {name for _, _, name in sockets}
        # the GCS, the raylet, the agents, the running jobs' workers and the driver all listen...
        assert {"gcs_server", "raylet", "ray::mlp_sweep_chunk", "python"} <= names, sockets
        assert any("Agent" in n for n in names), sockets
        # ...and every one of them on loopback only
        assert [s for s in sockets if not _loopback(s[0])] == []

        gcs = next(p for p in procs if p.name() == "gcs_server")
        token = gcs.environ().get("RAY_AUTH_TOKEN", "")
        assert len(token) == 64 and gcs.environ().get("RAY_AUTH_MODE") == "token"
        default = Path.home() / ".ray" / "auth_token"
        assert not default.exists() or default.read_text().strip() != token  # a token of its own
        port = next(port for _, port, name in sockets if name == "gcs_server")
        # a client without this sweep's token is refused; with it, the same call is answered
        assert _gcs_call(port, None) == grpc.StatusCode.UNAUTHENTICATED
        assert _gcs_call(port, "0" * 64) == grpc.StatusCode.UNAUTHENTICATED
        assert _gcs_call(port, token) == grpc.StatusCode.OK
        out, err = sweep.communicate(timeout=240)
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()
    assert sweep.returncode == 0, err
    assert len(rows(tmp_path / "sw")) == 4 and {r["status"] for r in results(tmp_path / "sw")} == {
        "ok"
    }
    assert _files_holding(tmp_path, token) == [] and token not in out + err


@pytest.fixture(scope="module")
def insecure_head(tmp_path_factory):
    """A head started without token authentication (Ray's opt-out), single-node on loopback."""
    node = RayNode(
        tmp_path_factory.mktemp("ray") / "insecure.log",
        num_cpus=1,
        env_extra={"RAY_AUTH_MODE": "disabled", **ON_LOOPBACK},
    )
    try:
        node.wait_started()
        yield node
    finally:
        node.stop()


@pytest.mark.ray
@pytest.mark.cluster
@pytest.mark.slow
def test_cluster_without_token_auth_is_refused_unless_allowed(insecure_head, tmp_path):
    args = [
        "-m",
        "experiment=cyclic_1cycle",
        *SMALL,
        "seed=0,1",
        "launcher=ray_cluster",
        f"sweep.ray.address={insecure_head.address}",
    ]
    refused = run_sweep(tmp_path, *args, sweep_dir="refused", env_extra=ON_LOOPBACK)
    assert refused.returncode == 2
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "does not require token authentication" in errors[0], refused.stderr
    assert "sweep.ray.allow_insecure=true" in errors[0] and insecure_head.address in errors[0]
    assert not list((tmp_path / "refused").glob("*/result.json"))
    # `auto` (here found through RAY_ADDRESS) is checked right after joining, before any job
    auto_env = {"RAY_ADDRESS": insecure_head.address, **ON_LOOPBACK}
    auto = run_sweep(
        tmp_path, *args[:-1], "sweep.ray.address=auto", sweep_dir="auto", env_extra=auto_env
    )
    assert auto.returncode == 2
    assert "does not require token authentication" in auto.stderr.strip().splitlines()[-1], (
        auto.stderr
    )
    assert not list((tmp_path / "auto").glob("*/result.json"))
    # `auto` joins before it can check: a driver already in token mode is told to leave that mode
    auto_allowed = run_sweep(
        tmp_path,
        *args[:-1],
        "sweep.ray.address=auto",
        "sweep.ray.allow_insecure=true",
        sweep_dir="auto_allowed",
        env_extra={**auto_env, "RAY_AUTH_MODE": "token"},
    )
    assert auto_allowed.returncode == 2
    assert "unset RAY_AUTH_MODE" in auto_allowed.stderr.strip().splitlines()[-1], (
        auto_allowed.stderr
    )
    assert not list((tmp_path / "auto_allowed").glob("*/result.json"))

    # allowed, from a shell in token mode: the driver leaves it (its workers could not call back)
    in_token_mode = {"RAY_AUTH_MODE": "token", **ON_LOOPBACK}
    allowed = run_sweep(
        tmp_path,
        *args,
        "sweep.ray.allow_insecure=true",
        sweep_dir="allowed",
        env_extra=in_token_mode,
    )
    assert allowed.returncode == 0, allowed.stderr
    assert "warning: joining the Ray cluster" in allowed.stderr
    assert sorted(int(r["seed"]) for r in rows(tmp_path / "allowed")) == [0, 1]


@pytest.mark.ray
@pytest.mark.cluster
@pytest.mark.slow
def test_token_cluster_is_joined_with_the_users_token_and_never_records_it(tmp_path):
    token = "5eC7e7" * 10 + "abcd"  # this test's own cluster token, given the documented way
    head = RayNode(
        tmp_path / "head.log", num_cpus=1, env_extra={"RAY_AUTH_TOKEN": token, **ON_LOOPBACK}
    )
    try:
        head.wait_started()
        args = [
            "-m",
            "experiment=cyclic_1cycle",
            *SMALL,
            "seed=0,1",
            "launcher=ray_cluster",
            f"sweep.ray.address={head.address}",
        ]
        # RAY_AUTH_MODE is not set for the driver: the sweep switches it on, the cluster wants it
        wrong = run_sweep(
            tmp_path,
            *args,
            env_extra={"RAY_AUTH_TOKEN": "f" * 64, **ON_LOOPBACK},
            sweep_dir="wrong",
        )
        assert wrong.returncode == 2
        expected = (
            f"error: the Ray cluster at {head.address} refused the token in RAY_AUTH_TOKEN "
            f"(it needs the head's `ray get-auth-token`)"
        )
        assert wrong.stderr.strip().splitlines()[-1:] == [expected], wrong.stderr
        assert not list((tmp_path / "wrong").glob("*/result.json"))
        proc = run_sweep(tmp_path, *args, env_extra={"RAY_AUTH_TOKEN": token, **ON_LOOPBACK})
    finally:
        head.stop()
    assert proc.returncode == 0, proc.stderr
    assert len(rows(tmp_path / "sw")) == 2
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "head.log"]
    assert any(p.name == "result.json" for p in written) and any(
        p.name == "multirun.yaml" for p in written
    )
    assert [p for p in written if token.encode() in p.read_bytes()] == []
    assert token not in proc.stdout + proc.stderr


def _cfg(**ray):
    from omegaconf import OmegaConf

    base = {"address": "local", "connect_timeout_s": 2, "allow_insecure": False}
    return OmegaConf.create({**base, **ray})


def test_ray_client_address_cannot_be_checked_so_it_needs_allow_insecure(capsys):
    with pytest.raises(
        UserError, match="does not require token authentication.*allow_insecure=true"
    ):
        ray_session._check_cluster_before_joining("ray://127.0.0.1:10001", _cfg())
    ray_session._check_cluster_before_joining("ray://127.0.0.1:10001", _cfg(allow_insecure=True))
    assert "warning: joining the Ray cluster at ray://127.0.0.1:10001" in capsys.readouterr().err


def test_token_is_looked_for_where_ray_looks(tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "missing"))
    assert ray_session._find_token() is None
    (tmp_path / "token").write_text("abc\n")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "token"))
    assert ray_session._find_token() == ("abc", str(tmp_path / "token"))
    monkeypatch.setenv("RAY_AUTH_TOKEN", "xyz")  # the environment variable comes first
    assert ray_session._find_token() == ("xyz", "RAY_AUTH_TOKEN")


def test_private_instance_is_refused_when_ray_was_imported_first():
    """Ray reads its settings when imported: a process that imported Ray before the sweep set
    them gets one clear line instead of an instance on every interface (no Ray is started)."""
    code = (
        "import ray\n"
        "from omegaconf import OmegaConf\n"
        "from mlp.errors import UserError\n"
        "from mlp.sweep.ray_session import _connect\n"
        "try:\n"
        "    _connect(OmegaConf.create({'address': 'local'}))\n"
        "except UserError as exc:\n"
        "    print(exc)\n"
    )
    env = venv_env()
    for key in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"):
        env.pop(key, None)
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=ROOT,
    )
    assert "must be configured before Ray is imported" in out.stdout, out.stdout + out.stderr
