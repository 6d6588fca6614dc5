"""Helpers of the tracking tests: a real MLflow tracking server on 127.0.0.1, and reading runs back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from sweep_support import free_port, venv_env

MLFLOW = str(Path(sys.executable).parent / "mlflow")


class MlflowServer:
    """`mlflow server` with a SQLite backend and proxied artifacts, in its own process group."""

    def __init__(self, root: Path):
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.log = root / "server.log"
        cmd = [
            MLFLOW,
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination",
            str(root / "artifacts"),
        ]
        log = open(self.log, "w")  # noqa: SIM115  (the server's, for its lifetime)
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=venv_env()
        )

    def wait_ready(self, timeout: float = 150) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {self.log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(self.uri + "/health", timeout=1).close()
                return
            except OSError:
                time.sleep(0.3)
        raise TimeoutError(f"mlflow server did not answer: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        for sig, wait in ((signal.SIGTERM, 3), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(wait)
                return
            except ProcessLookupError:
                return
            except subprocess.TimeoutExpired:
                continue


def all_runs(uri: str, experiment: str = "mlp-study") -> list:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    return [] if found is None else client.search_runs([found.experiment_id], max_results=1000)
