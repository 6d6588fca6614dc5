"""Start a private local Ray instance or join a cluster, quietly, failing fast on a bad address."""

from __future__ import annotations

import logging
import os
import secrets
import sys
import threading
import time
from pathlib import Path
from typing import Any

from mlp.errors import UserError
from mlp.sweep.ray_options import init_kwargs

GCS_PROBE = "/ray.rpc.NodeInfoGcsService/GetClusterId"
LOOPBACK = "127.0.0.1"
# Ray's documented environment variables, read when Ray is imported (and inherited by the
# processes ray.init starts). The private instance sets RAY_AUTH_MODE, RAY_AUTH_TOKEN and
# SINGLE_NODE; a cluster join may set RAY_AUTH_MODE. See docs/security.md.
AUTH_MODE, AUTH_TOKEN, AUTH_TOKEN_PATH = "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"
SINGLE_NODE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": single node, whose address is loopback


def _probe(address: str, timeout_s: float, token: str | None = None) -> bool:
    """Ask host:port for its cluster id over gRPC, so a dead or non-Ray address fails in seconds
    (ray.init would retry for ~20 s, logging a line per second). True: the cluster refused the
    call for want of a token (or, given one, for a wrong one)."""
    import grpc

    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"sweep.ray.address={address!r} is not host:port, 'auto' or 'local'")
    channel = grpc.insecure_channel(target, options=[("grpc.enable_http_proxy", 0)])
    call = channel.unary_unary(
        GCS_PROBE, request_serializer=lambda b: b, response_deserializer=lambda b: b
    )
    try:
        metadata = [("authorization", f"Bearer {token}")] if token else None
        call(b"", timeout=timeout_s, metadata=metadata)
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
            return True
        detail = (exc.details() or "").splitlines()[0][:120] if exc.details() else ""
        raise UserError(
            f"cannot reach a Ray cluster at {address} ({exc.code().name}: {detail})"
        ) from None
    finally:
        channel.close()
    return False


def _use_token_auth(address: str, timeout_s: float = 5.0) -> None:
    """The cluster wants a token: take the one where Ray looks (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH,
    ~/.ray/auth_token), check the cluster accepts it (a wrong one fails in seconds, in one line)
    and switch this driver to token mode by Ray's documented RAY_AUTH_MODE, which Ray reads when
    it is imported (ray.init turns it on by itself only for address=auto)."""
    found = _find_token()
    if found is None:
        raise UserError(
            f"the Ray cluster at {address} requires token authentication and no token "
            f"was found (copy the head's `ray get-auth-token` into ~/.ray/auth_token "
            f"or RAY_AUTH_TOKEN)"
        )
    token, where = found
    if _probe(address, timeout_s, token):
        raise UserError(
            f"the Ray cluster at {address} refused the token in {where} "
            f"(it needs the head's `ray get-auth-token`)"
        )
    _set_driver_auth_mode(
        "token",
        f"the Ray cluster at {address} requires token authentication, and Ray was "
        f"imported before the sweep could switch it on: set {AUTH_MODE}=token in "
        f"the environment",
    )


def _set_driver_auth_mode(mode: str, too_late: str) -> None:
    """Put this driver in Ray's auth mode ("token" or "disabled") by Ray's documented
    RAY_AUTH_MODE, which Ray reads when it is imported: UserError(too_late) when Ray was already
    imported in the other mode."""
    if (os.environ.get(AUTH_MODE, "").lower() == "token") == (mode == "token"):
        return
    if "ray" in sys.modules:
        raise UserError(too_late)
    os.environ[AUTH_MODE] = mode


def _find_token() -> tuple[str, str] | None:
    """The token Ray would use and where it is, in Ray's documented order; kept in memory only."""
    if os.environ.get(AUTH_TOKEN, "").strip():
        return os.environ[AUTH_TOKEN].strip(), AUTH_TOKEN
    path = Path(os.environ.get(AUTH_TOKEN_PATH) or Path.home() / ".ray" / "auth_token").expanduser()
    try:
        token = path.read_text().strip()
    except OSError:
        return None
    return (token, str(path)) if token else None


def _refuse_unauthenticated(address: str, ray_cfg) -> None:
    """A cluster without token authentication runs anyone's code who reaches its ports: join it
    only when the user says so (sweep.ray.allow_insecure=true), and then say so on stderr."""
    if not bool(ray_cfg.get("allow_insecure", False)):
        raise UserError(
            f"the Ray cluster at {address} does not require token authentication "
            f"(anyone who reaches its ports can run code on it): restart it with "
            f"RAY_AUTH_MODE=token (docs/security.md), or set "
            f"sweep.ray.allow_insecure=true to use it anyway"
        )
    # a driver in token mode (RAY_AUTH_MODE=token from the user's shell) would join, but the
    # cluster's workers could not call it back without a token: the sweep would wait forever
    _set_driver_auth_mode(
        "disabled",
        f"the Ray cluster at {address} does not use token authentication, and this driver "
        f"runs with {AUTH_MODE}=token (its workers could not reach it): unset {AUTH_MODE} "
        f"in the environment",
    )
    print(
        f"warning: joining the Ray cluster at {address} without token authentication "
        f"(sweep.ray.allow_insecure=true)",
        file=sys.stderr,
    )


def _check_cluster_before_joining(address: str, ray_cfg) -> None:
    """host:port is asked over gRPC before ray.init (fails fast, and tells whether it wants a
    token); `auto` is checked right after joining (_check_joined_cluster); a Ray Client address
    cannot be checked, so it counts as unauthenticated."""
    if address == "auto":
        return
    if address.startswith("ray://"):
        _refuse_unauthenticated(address, ray_cfg)
        return
    if _probe(address, float(ray_cfg.connect_timeout_s)):
        _use_token_auth(address, float(ray_cfg.connect_timeout_s))
    else:
        _refuse_unauthenticated(address, ray_cfg)


def _check_joined_cluster(address: str, ray_cfg) -> None:
    """After ray.init(address="auto"): ask the GCS it found, without a token, whether it wants one;
    leave (before any job is submitted) if it does not and that is not allowed."""
    import ray

    gcs = ray.get_runtime_context().gcs_address
    try:
        if not _probe(gcs, float(ray_cfg.connect_timeout_s)):
            _refuse_unauthenticated(f"{gcs} (address={address})", ray_cfg)
    except UserError:
        ray.shutdown()
        raise


def _private_instance_env() -> None:
    """Configure the private instance before Ray is imported: single-node, so every process binds
    to loopback, and token authentication with a fresh token of this sweep's own, held only in
    this process's environment (inherited by the instance's processes, never written to a file).
    A second start in the same process keeps the first token: the driver's Ray has cached it."""
    wanted = {SINGLE_NODE: "0", AUTH_MODE: "token"}
    if "ray" in sys.modules:
        if all(os.environ.get(k) == v for k, v in wanted.items()) and os.environ.get(AUTH_TOKEN):
            return
        raise UserError(
            "the sweep's private Ray instance must be configured before Ray is "
            "imported (loopback only, token authentication), and this process imported "
            "Ray earlier: run the sweep in a fresh process (runners/sweep.py)"
        )
    os.environ.update(wanted)
    os.environ[AUTH_TOKEN] = secrets.token_hex(32)


def _check_loopback() -> None:
    """The private instance's node address (what its processes bind to) must be loopback."""
    import ray

    ip = ray.util.get_node_ip_address()
    if not ip.startswith("127."):
        ray.shutdown()
        raise UserError(f"the sweep's private Ray instance started on {ip}, not on loopback")


class _EarlyStart(threading.Thread):
    """connect() on a thread of its own, so Ray comes up while the driver composes the jobs.

    The thread stays alive until disconnect(): Ray ties its GCS and raylet to the life of the
    thread that spawned them (PR_SET_PDEATHSIG), so a finished thread would take them down."""

    def __init__(self, ray_cfg):
        super().__init__(name="ray-start", daemon=True)
        self.ray_cfg, self.info, self.error = ray_cfg, None, None
        self.ready, self.release = threading.Event(), threading.Event()

    def run(self) -> None:
        try:
            self.info = _connect(self.ray_cfg)
        except BaseException as exc:  # handed to the main thread by result()
            self.error = exc
        self.ready.set()
        self.release.wait()

    def result(self) -> dict:
        self.ready.wait()
        if self.error is not None:
            raise self.error
        assert self.info is not None
        return self.info


_early: _EarlyStart | None = None


def start_early(ray_cfg) -> None:
    """Begin starting (or joining) Ray in the background; connect() later picks it up."""
    global _early
    if _early is None:
        _early = _EarlyStart(ray_cfg)
        _early.start()


def early_ready() -> bool:
    """False while an early start is still under way (the driver may check jobs meanwhile)."""
    return _early is None or _early.ready.is_set()


def start_early_if_useful(master) -> bool:
    """Start Ray on a background thread while Hydra composes and checks the jobs (about 1 s
    of a sweep's start-up here), unless the store or the sweep folder already holds results:
    a resumed sweep may need no Ray at all (an unused early start costs its whole start-up and
    shut-down), and the launcher starts Ray itself with its first job to run. The launcher
    waits for it before the first job; a job that fails its checks still stops the sweep before
    any job starts. Returns whether it started."""
    try:
        if "mlp_ray_launcher" not in str(master.hydra.launcher.get("_target_", "")):
            return False
        settings = master.sweep
        sweep_dir = Path.cwd() / str(master.hydra.sweep.dir)
        store = Path.cwd() / str(settings.store)
        stored = store.is_dir() and any(p.suffix in (".parquet", ".json") for p in store.iterdir())
        if settings.get("dry_run") or (
            not settings.force and (stored or (sweep_dir / "results.csv").exists())
        ):
            return False
        from mlp.sweep.data_ship import size_object_store

        size_object_store(master)
        ray_cfg = settings.ray
    except Exception:  # anything odd in the config: the launcher reports it, and starts Ray itself
        return False
    start_early(ray_cfg)
    return True


def connect(ray_cfg) -> dict:
    """ray.init for the sweep; returns {"address", "start_s", "local", "began_at"}. Raises UserError on failure.

    start_s (Ray start-up) counts importing Ray, probing the address and ray.init: when Ray was
    started early, the time that start took on its thread, not the (shorter) wait for it."""
    if _early is not None:
        return _early.result()
    return _connect(ray_cfg)


def _connect(ray_cfg) -> dict:
    start, began_at = time.perf_counter(), time.time()
    address = str(ray_cfg.address or "local")
    if address.startswith(("http://", "https://")):
        raise UserError(
            f"sweep.ray.address={address} is a dashboard/job-submission URL; give the "
            f"cluster's host:port (e.g. 127.0.0.1:6379), or submit the sweep with "
            f"`ray job submit`"
        )
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        return {"address": address, "start_s": 0.0, "local": False, "began_at": began_at}
    # Ray reads its settings when imported: the checks below set them first.
    if address == "local":
        _private_instance_env()
    else:
        _check_cluster_before_joining(address, ray_cfg)
    import ray

    level = getattr(logging, str(ray_cfg.logging_level).upper(), logging.ERROR)
    for name in ("ray", "ray._private.authentication.authentication_token_setup"):
        logging.getLogger(name).setLevel(level)
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    common: dict[str, Any] = dict(
        logging_level=level, log_to_driver=bool(ray_cfg.log_to_driver), configure_logging=True
    )
    try:
        if address == "local":
            kwargs: dict[str, Any] = dict(
                include_dashboard=False,
                dashboard_host=LOOPBACK,
                object_store_memory=int(ray_cfg.object_store_mb) * 1024**2,
            )
            if ray_cfg.num_cpus is not None:
                kwargs["num_cpus"] = int(ray_cfg.num_cpus)
            ray.init(address="local", **init_kwargs(ray_cfg, {**kwargs, **common}, joining=False))
            _check_loopback()
        else:
            ray.init(address=address, **init_kwargs(ray_cfg, common, joining=True))
            if address == "auto":
                _check_joined_cluster(address, ray_cfg)
    except UserError:
        raise
    except Exception as exc:  # ConnectionError, AuthenticationError, RuntimeError from ray.init
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"cannot start or reach Ray at address={address}: {first}") from None
    return {
        "address": address,
        "start_s": time.perf_counter() - start,
        "local": address == "local",
        "began_at": began_at,
    }


def cluster_cpus() -> float:
    import ray

    return float(ray.cluster_resources().get("CPU", 0))


def own_autoscaler_monitors() -> list:
    """The autoscaler monitor of the private instance this process started (psutil processes).

    It ignores SIGTERM for the whole second ray.shutdown() grants it (1.0 of ~1.3 s here), and a
    single-node instance has nothing for it to do. Found among this process's own children by
    its script's path, without Ray's internals: a cluster's monitor is never our child, and a
    Ray that names the script otherwise costs that second again (tests/test_sweep_local.py
    checks that the pinned Ray's is found)."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is a dependency; be lenient all the same
        return []
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            cmdline = child.cmdline()
        except psutil.Error:
            continue
        if any(
            part.replace(os.sep, "/").endswith("autoscaler/_private/monitor.py") for part in cmdline
        ):
            found.append(child)
    return found


def _stop_own_autoscaler_monitor() -> None:
    """SIGKILL our private instance's monitor before ray.shutdown() (it holds nothing of ours)."""
    for proc in own_autoscaler_monitors():
        try:
            proc.kill()
            proc.wait(timeout=5)
        except Exception:  # noqa: BLE001  (gone already, or not ours to wait for: shutdown goes on)
            continue


def disconnect() -> None:
    """Stop the local instance (or leave the cluster); waits for an early start still under way."""
    global _early
    early, _early = _early, None
    if early is None and "ray" not in sys.modules:
        return  # never started: no need to import Ray to find that out
    if early is not None:
        early.ready.wait()
    try:
        import ray

        if ray.is_initialized():
            _stop_own_autoscaler_monitor()
            ray.shutdown()
    finally:
        if early is not None:
            early.release.set()
            early.join()
