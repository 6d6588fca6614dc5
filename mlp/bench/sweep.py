"""Sweep figures (filled in below)."""
from __future__ import annotations


def part_sweep(args, rows) -> None:
    from mlp.bench.table import Row
    rows.append(Row("sweep", "sweep", float("nan"), "", "sweep machinery not available"))
