"""Start a private local Ray instance or join a cluster, quietly, failing fast on a bad address."""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from mlp.errors import UserError
from mlp.sweep.ray_options import init_kwargs

GCS_PROBE = "/ray.rpc.NodeInfoGcsService/GetClusterId"


def _probe(address: str, timeout_s: float) -> bool:
    """Ask host:port for its cluster id over gRPC, so a dead or non-Ray address fails in seconds
    (ray.init would retry for ~20 s, logging a line per second). True: the cluster wants a token."""
    import grpc

    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"sweep.ray.address={address!r} is not host:port, 'auto' or 'local'")
    channel = grpc.insecure_channel(target, options=[("grpc.enable_http_proxy", 0)])
    call = channel.unary_unary(GCS_PROBE, request_serializer=lambda b: b, response_deserializer=lambda b: b)
    try:
        call(b"", timeout=timeout_s)
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
            return True
        detail = (exc.details() or "").splitlines()[0][:120] if exc.details() else ""
        raise UserError(f"cannot reach a Ray cluster at {address} ({exc.code().name}: {detail})") from None
    finally:
        channel.close()
    return False


def _use_token_auth(address: str) -> None:
    """The cluster wants a token (Ray's default for clusters it starts). ray.init only picks the
    token up by itself for address=auto, so switch token mode on when one is available here."""
    if os.environ.get("RAY_AUTH_MODE"):
        return
    try:
        from ray._private.authentication.authentication_token_setup import _enable_token_auth
        from ray._raylet import AuthenticationTokenLoader
    except ImportError:  # a Ray without token auth
        return
    if not AuthenticationTokenLoader.instance().has_token(ignore_auth_mode=True):
        raise UserError(f"the Ray cluster at {address} requires token authentication and no token was found "
                        f"(copy the head's `ray get-auth-token` into ~/.ray/auth_token or RAY_AUTH_TOKEN)")
    _enable_token_auth()


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
        return self.info


_early: _EarlyStart | None = None


def start_early(ray_cfg) -> None:
    """Begin starting (or joining) Ray in the background; connect() later picks it up."""
    global _early
    if _early is None:
        _early = _EarlyStart(ray_cfg)
        _early.start()


def start_early_if_useful(master) -> bool:
    """Start Ray on a background thread while Hydra composes and checks the jobs (about 1 s
    of a sweep's start-up here), unless the sweep folder already holds results: a resumed
    sweep may need no Ray at all. The launcher waits for it before the first job; a job that
    fails its checks still stops the sweep before any job starts. Returns whether it started."""
    try:
        if "mlp_ray_launcher" not in str(master.hydra.launcher.get("_target_", "")):
            return False
        settings = master.sweep
        sweep_dir = Path.cwd() / str(master.hydra.sweep.dir)
        if not settings.force and (sweep_dir / "results.csv").exists():
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
    import ray

    address = str(ray_cfg.address or "local")
    level = getattr(logging, str(ray_cfg.logging_level).upper(), logging.ERROR)
    for name in ("ray", "ray._private.authentication.authentication_token_setup"):
        logging.getLogger(name).setLevel(level)
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    common = dict(logging_level=level, log_to_driver=bool(ray_cfg.log_to_driver), configure_logging=True)
    if address.startswith(("http://", "https://")):
        raise UserError(f"sweep.ray.address={address} is a dashboard/job-submission URL; give the cluster's "
                        f"host:port (e.g. 127.0.0.1:6379), or submit the sweep with `ray job submit`")
    if ray.is_initialized():
        return {"address": address, "start_s": 0.0, "local": False, "began_at": began_at}
    try:
        if address == "local":
            kwargs = dict(include_dashboard=False,
                          object_store_memory=int(ray_cfg.object_store_mb) * 1024 ** 2)
            if ray_cfg.num_cpus is not None:
                kwargs["num_cpus"] = int(ray_cfg.num_cpus)
            ray.init(address="local", **init_kwargs(ray_cfg, {**kwargs, **common}, joining=False))
        else:
            if address != "auto" and not address.startswith("ray://"):
                if _probe(address, float(ray_cfg.connect_timeout_s)):
                    _use_token_auth(address)
            ray.init(address=address, **init_kwargs(ray_cfg, common, joining=True))
    except UserError:
        raise
    except Exception as exc:  # ConnectionError, AuthenticationError, RuntimeError from ray.init
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"cannot start or reach Ray at address={address}: {first}") from None
    return {"address": address, "start_s": time.perf_counter() - start, "local": address == "local",
            "began_at": began_at}


def cluster_cpus() -> float:
    import ray

    return float(ray.cluster_resources().get("CPU", 0))


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
            _stop_monitor()
            ray.shutdown()
    finally:
        if early is not None:
            early.release.set()
            early.join()


def _stop_monitor() -> None:
    """Kill our local instance's autoscaler monitor before ray.shutdown(): it ignores SIGTERM
    for the full second ray.shutdown() waits on it (1.0 of its 1.4 s here). It holds no state
    of ours, and every result is already on the driver when this runs."""
    try:
        from ray._private import ray_constants
        from ray._private.worker import _global_node
    except ImportError:  # a Ray without these internals: the plain shutdown still works
        return
    if _global_node is None:  # connected to a cluster: its processes are not ours to stop
        return
    for info in _global_node.all_processes.get(ray_constants.PROCESS_TYPE_MONITOR, []):
        if info.process.poll() is None:
            info.process.send_signal(signal.SIGKILL)
            info.process.wait(timeout=5)
