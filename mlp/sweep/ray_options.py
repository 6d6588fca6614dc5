"""What Ray users set, passed through: `sweep.ray.init` (ray.init arguments), `sweep.ray.remote`
(the task's `.options()`), and the project's code shipped to worker nodes (runtime_env).

With `sweep.ray.ship_code: true` (the default) a sweep joining a cluster sends the `mlp`
package to the workers through Ray's runtime environment (py_modules), so a worker node needs
only Python and the dependencies. The tasks import nothing else of the project (no Hydra
plugin, no conf/: they receive the resolved config).
"""

from __future__ import annotations

import inspect
import json
import os
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from mlp.errors import UserError

JOB_CONFIG_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"
CODE_EXCLUDES = ["__pycache__/", "*.pyc"]
WORKING_DIR_EXCLUDES = ["outputs/", "data/", ".git/", ".venv/", "*.egg-info/", "__pycache__/"]
RESERVED_INIT = {
    "address": "use sweep.ray.address",
    "dashboard_host": "the local instance stays on loopback: docs/security.md",
}
RESERVED_REMOTE = {
    "num_cpus": "use sweep.cpus_per_job",
    "max_retries": "use sweep.max_retries",
    "retry_exceptions": "use sweep.max_retries",
}


def _plain(node, where: str) -> dict:
    if node is None:
        return {}
    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node, resolve=True)
    if not isinstance(node, dict):
        raise UserError(f"{where} must be a mapping of option: value, got {node!r}")
    return node


def _check_reserved(options: dict, reserved: dict, where: str) -> None:
    for key, instead in reserved.items():
        if key in options:
            raise UserError(f"{where}.{key} is set by the sweep ({instead})")


def code_runtime_env(ray_cfg) -> dict:
    """The runtime_env that ships this checkout's `mlp` package (empty when ship_code is off)."""
    env: dict = {}
    if ray_cfg.get("ship_code", True) and not _job_ships_code():
        import mlp

        env["py_modules"] = [str(Path(mlp.__file__).resolve().parent)]
        env["excludes"] = list(CODE_EXCLUDES)
    if ray_cfg.get("working_dir"):
        env["working_dir"] = str(Path(str(ray_cfg.working_dir)).resolve())
        env["excludes"] = sorted(set(env.get("excludes", [])) | set(WORKING_DIR_EXCLUDES))
    return env


def _job_ships_code() -> bool:
    """True inside `ray job submit --working-dir/--py-modules`: the job's runtime_env already
    carries the code to every worker (adding py_modules then fails the workers' env setup).
    Ray hands a job's entrypoint its config in this environment variable."""
    try:
        job = json.loads(os.environ.get(JOB_CONFIG_ENV, "") or "{}")
    except ValueError:
        return False
    env = job.get("runtime_env") or {}
    return bool(env.get("working_dir") or env.get("py_modules"))


def merge_runtime_env(ours: dict, user: dict) -> dict:
    """The user's runtime_env over ours; list fields (py_modules, excludes) are joined."""
    merged = dict(ours)
    for key, value in user.items():
        if key in ("py_modules", "excludes") and key in merged:
            merged[key] = list(merged[key]) + [v for v in value if v not in merged[key]]
        else:
            merged[key] = value
    return merged


def init_kwargs(ray_cfg, ours: dict, joining: bool) -> dict:
    """ray.init's keyword arguments: ours, then sweep.ray.init over them; joining a cluster
    adds the shipped code to the runtime_env. Raises UserError for a key ray.init lacks."""
    import ray

    user = dict(_plain(ray_cfg.get("init"), "sweep.ray.init"))
    _check_reserved(user, RESERVED_INIT, "sweep.ray.init")
    allowed = [
        name
        for name, p in inspect.signature(ray.init).parameters.items()
        if p.kind is not inspect.Parameter.VAR_KEYWORD and name not in RESERVED_INIT
    ]
    for key in user:
        if key not in allowed:
            raise UserError(
                f"sweep.ray.init.{key} is not an argument of ray.init "
                f"(allowed: {', '.join(allowed)})"
            )
    kwargs = {**ours, **user}
    env = merge_runtime_env(
        code_runtime_env(ray_cfg) if joining else {},
        _plain(user.get("runtime_env"), "sweep.ray.init.runtime_env"),
    )
    kwargs["runtime_env"] = env or None
    return kwargs


def remote_options(settings) -> dict:
    """sweep.ray.remote, checked by Ray's own `.options()` once Ray is imported (importing it
    earlier would fix Ray's auth settings before ray_session sets them): the launcher calls this
    before composing jobs (shape and reserved keys) and again before submitting any task."""
    options = _plain(settings.ray.get("remote"), "sweep.ray.remote")
    _check_reserved(options, RESERVED_REMOTE, "sweep.ray.remote")
    if "ray" not in sys.modules:
        return options
    import ray

    try:
        ray.remote(_noop).options(**options)
    except (ValueError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"sweep.ray.remote: {first}") from None
    return options


def _noop() -> None:
    """Stands in for the task when Ray checks sweep.ray.remote."""
