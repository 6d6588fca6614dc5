"""Start a private local Ray instance or join a cluster, quietly, failing fast on a bad address."""
from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path
from urllib.parse import urlparse

from mlp.errors import UserError

RUNTIME_ENV_EXCLUDES = ["outputs/", "data/", ".git/", ".venv/", "*.egg-info/", "__pycache__/"]


def _probe(address: str, timeout_s: float) -> None:
    """A TCP connect to host:port, so a dead address costs seconds, not Ray's minute of retries."""
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"sweep.ray.address={address!r} is not host:port, 'auto' or 'local'")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise UserError(f"cannot reach the Ray cluster at {address} ({exc.strerror or exc})") from None


def connect(ray_cfg) -> dict:
    """ray.init for the sweep; returns {"address", "start_s", "local"}. Raises UserError on failure."""
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
    start = time.perf_counter()
    if ray.is_initialized():
        return {"address": address, "start_s": 0.0, "local": False}
    try:
        if address == "local":
            kwargs = dict(include_dashboard=False,
                          object_store_memory=int(ray_cfg.object_store_mb) * 1024 ** 2)
            if ray_cfg.num_cpus is not None:
                kwargs["num_cpus"] = int(ray_cfg.num_cpus)
            ray.init(address="local", **kwargs, **common)
        else:
            if address != "auto":
                _probe(address, float(ray_cfg.connect_timeout_s))
            runtime_env = None
            if ray_cfg.working_dir:
                runtime_env = {"working_dir": str(Path(str(ray_cfg.working_dir)).resolve()),
                               "excludes": RUNTIME_ENV_EXCLUDES}
            ray.init(address=address, runtime_env=runtime_env, **common)
    except UserError:
        raise
    except Exception as exc:  # ConnectionError, AuthenticationError, RuntimeError from ray.init
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"cannot start or reach Ray at address={address}: {first}") from None
    return {"address": address, "start_s": time.perf_counter() - start, "local": address == "local"}


def cluster_cpus() -> float:
    import ray

    return float(ray.cluster_resources().get("CPU", 0))


def disconnect() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()
