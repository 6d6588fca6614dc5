"""Shared fixtures: composing the real Hydra configs, the shared archive, a per-test cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
# The team's shared archive: beside the clone (/work/main -> /work/shared) or beside the worktrees
# folder (/work/wt/<branch> -> /work/shared); MLP_SHARED_ARCHIVE names it elsewhere.
_CANDIDATES = [
    ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz",
    ROOT.parent.parent / "shared" / "data" / "cifar10-jpeg.tar.gz",
]
SHARED_ARCHIVE = (
    Path(os.environ.get("MLP_SHARED_ARCHIVE", ""))
    if os.environ.get("MLP_SHARED_ARCHIVE")
    else next((p for p in _CANDIDATES if p.is_file()), _CANDIDATES[0])
)

# Small synthetic settings that keep a training run to a fraction of a second.
SMALL_SYNTHETIC = ["data=synthetic", "data.n_train=1000", "data.n_test=200", "data.batch_size=200"]


def compose_cfg(overrides: list[str]):
    with initialize_config_module(config_module="mlp.conf", version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


@pytest.fixture(autouse=True)
def _environment_put_back():
    """An in-process ray.init sets RAY_AUTH_MODE=token (and more) in os.environ: put the
    environment back after each test, so later tests' subprocesses never inherit it."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def shared_ray(tmp_path_factory):
    """One Ray head (2 CPUs, token auth, 127.0.0.1) for the sweep tests whose subject is not Ray's
    own start or end: their sweeps join it (sweep_support.joining) in about a second instead of
    starting a private instance each (5-11 s of start-up and shut-down on 2 cores)."""
    from sweep_support import RayNode

    node = RayNode(tmp_path_factory.mktemp("shared-ray") / "head.log", num_cpus=2)
    try:
        node.wait_started()
        yield node
    finally:
        node.stop()


@pytest.fixture
def cfg_factory(tmp_path):
    """Compose a config with the cache redirected into the test's own folder."""

    def make(overrides: list[str]):
        cfg = compose_cfg(overrides)
        if "cache_dir" in cfg.data:
            cfg.data.cache_dir = str(tmp_path / "cache")
        return cfg

    return make


@pytest.fixture(scope="session")
def shared_archive() -> Path:
    """The real archive; missing, a real-data test skips on a laptop but fails in CI (env CI set)."""
    if not SHARED_ARCHIVE.is_file():
        message = (
            f"shared CIFAR-10 archive not present at {SHARED_ARCHIVE} (set MLP_SHARED_ARCHIVE)"
        )
        if os.environ.get("CI"):
            pytest.fail(message + "; CI runs every real-data test", pytrace=False)
        pytest.skip(message)
    return SHARED_ARCHIVE


def shared_cache_dir() -> str:
    """Real-archive tests share one cache so the archive is decoded once per machine."""
    return os.environ.get("MLP_CACHE_DIR", str(Path.home() / ".cache" / "mlp_study"))


def run_cli(
    script: str, *args: str, cwd: Path = ROOT, env_extra: dict | None = None
) -> subprocess.CompletedProcess:
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run(
        [sys.executable, str(ROOT / "runners" / script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
