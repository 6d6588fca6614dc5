"""Regenerate the study's report from results: `mlp-report [DIR ...] [--out DIR]`.

Reads every sweep's results.parquet, every result.json outside sweeps and the λ-search summaries
below the given folders (default: outputs/) and writes REPORT.md, tables/ (CSV + Markdown)
and figures/ (PNG) into --out (default outputs/report/). It never trains; unusable result files are listed and skipped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from omegaconf import OmegaConf

from mlp.cli import conf_file, fail
from mlp.errors import UserError
from mlp.report.build import build_report, write_report
from mlp.report.gather import gather

DEFAULT_CONFIG = conf_file("report", "report.yaml")


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "dirs", nargs="*", type=Path, help="folders (or result files) to read; default: outputs/"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("outputs/report"),
        help="where to write (default outputs/report)",
    )
    p.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        help="report config (study numbers, bars, figure 1)",
    )
    return p.parse_args(argv)


def run(argv: list[str]) -> Path:
    args = parse(argv)
    dirs = args.dirs or [Path("outputs")]
    for d in dirs:
        if not d.exists():
            raise UserError(f"no such folder or file: {d}")
    if not args.config.is_file():
        raise UserError(f"report config not found: {args.config}")
    try:
        cfg = OmegaConf.load(args.config)
    except Exception as exc:
        raise UserError(
            f"cannot read report config {args.config}: {str(exc).splitlines()[0]}"
        ) from None
    gathered = gather(dirs, exclude=[args.out], base=Path.cwd())
    for path, why in gathered.problems:
        print(f"warning: skipped {path}: {why}", file=sys.stderr)
    report = build_report(gathered, cfg)
    write_report(report, args.out)
    print(
        f"{len(gathered.runs)} results, {len(gathered.problems)} skipped; "
        f"{len(report.tables)} tables, {len(report.figures)} figures"
    )
    out = args.out / "REPORT.md"
    print(out)
    return out


def main() -> None:
    try:
        run(sys.argv[1:])
    except UserError as exc:
        fail(str(exc))


if __name__ == "__main__":
    main()
