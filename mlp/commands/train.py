"""Run one experiment: `mlp-train experiment=NAME [key=value ...]` (or `python runners/train.py`).

Writes result.json (resolved config, metrics, history) into the Hydra run directory
and prints its path last.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_original_cwd
from omegaconf import DictConfig

from mlp import run_progress
from mlp.atomic import write_json_atomic
from mlp.cli import (
    CONFIG_PATH,
    absolutize_paths,
    check_composes,
    check_group_choices,
    fail,
)
from mlp.errors import UserError
from mlp.experiment import run_experiment


def summary(result: dict) -> str:
    tag = " [SYNTHETIC DATA]" if result["synthetic"] else ""
    if "gradcheck" in result:
        verdict = "passed" if result["passed"] else "FAILED"
        return (
            f"{result['experiment']}{tag}: max relative error {result['max_rel_error']:.2e} "
            f"(tolerance {result['tolerance']:.0e}) {verdict}"
        )
    return (
        f"{result['experiment']}{tag}: λ={result['lambda']:.3g} seed={result['seed']} "
        f"train_acc={result['train_acc']:.4f} val_acc={result['val_acc']:.4f} test_acc={result['test_acc']:.4f} "
        f"final_train_loss={result['final_train_loss']:.4f} ({result['train_s']:.1f} s)"
    )


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="config")
def train(cfg: DictConfig) -> None:
    run_progress.enable()
    try:
        absolutize_paths(cfg, Path(get_original_cwd()))
        result = run_experiment(cfg)
    except UserError as exc:
        fail(str(exc))
    out = Path(HydraConfig.get().runtime.output_dir) / "result.json"
    write_json_atomic(out, result)
    print(summary(result))
    print(out)
    if result.get("passed") is False:
        sys.exit(1)


def main() -> None:
    """Check the command line in one line per problem, then hand it to Hydra."""
    try:
        check_group_choices(sys.argv[1:])
        check_composes(sys.argv[1:])
    except UserError as exc:
        fail(str(exc))
    train()


if __name__ == "__main__":
    main()
