"""Benchmark rows, printed as one aligned table and written as CSV and Markdown (atomically)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, fields
from pathlib import Path

from mlp.atomic import write_atomic


@dataclass
class Row:
    part: str  # step | peak | data | train | sweep | machine
    name: str  # what was measured
    value: float | str
    unit: str = ""
    note: str = ""  # ratio, fraction of peak, target, or why it was skipped


def _fmt(v) -> str:
    if isinstance(v, float):
        if v != v:  # NaN: not measured
            return "—"
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"
    return str(v)


def as_text(rows: list[Row]) -> str:
    cells = [("part", "figure", "value", "unit", "note")] + [
        (r.part, r.name, _fmt(r.value), r.unit, r.note) for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(5)]
    lines = [
        "  ".join(
            c[i].ljust(widths[i]) if i != 2 else c[i].rjust(widths[i]) for i in range(5)
        ).rstrip()
        for c in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def as_markdown(rows: list[Row]) -> str:
    out = ["| part | figure | value | unit | note |", "| --- | --- | ---: | --- | --- |"]
    out += [f"| {r.part} | {r.name} | {_fmt(r.value)} | {r.unit} | {r.note} |" for r in rows]
    return "\n".join(out)


def as_csv(rows: list[Row]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([f.name for f in fields(Row)])
    for r in rows:
        w.writerow([getattr(r, f.name) for f in fields(Row)])
    return buf.getvalue()


def write(rows: list[Row], out_dir: Path, stem: str, header: str) -> tuple[Path, Path]:
    """<out_dir>/<stem>.csv and .md (the Markdown one starts with the command/machine/date header)."""
    out_dir = Path(out_dir)
    csv_path, md_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.md"
    write_atomic(csv_path, as_csv(rows))
    write_atomic(md_path, header + "\n\n" + as_markdown(rows) + "\n")
    return csv_path, md_path
