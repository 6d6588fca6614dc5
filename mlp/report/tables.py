"""The study's tables from the gathered runs: one row per configuration, mean ± std and n over seeds.

Each table is kept numeric (CSV: `<metric>_mean`, `<metric>_std`, `n`) and rendered for reading
(Markdown: "mean ± std", accuracies in %). Rows are sorted by their key columns, so the same
results always give the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlp.report.gather import flatten, is_neutral

TRAIN_METRICS = (
    "train_acc",
    "val_acc",
    "test_acc",
    "final_train_loss",
    "final_val_loss",
    "train_s",
)
GRADCHECK_METRICS = ("grad_max", "abs_err_max", "abs_err_mean", "max_rel_error")
# Key columns (the configuration a row stands for) per experiment; other experiments get DEFAULT_KEYS.
CYCLIC_KEYS = ("lambda", "eta_min", "eta_max", "n_s", "cycles", "batch_size", "n_train", "n_val")
KEYS = {
    "overfit": ("lambda", "eta", "epochs", "batch_size", "n_train"),
    "cyclic_1cycle": CYCLIC_KEYS,
    "cyclic_3cycles": CYCLIC_KEYS,
    "lambda_coarse": ("lambda", "n_s", "cycles", "n_train", "n_val"),
    "lambda_fine": ("lambda", "n_s", "cycles", "n_train", "n_val"),
    "final": ("lambda", "n_s", "cycles", "n_train", "n_val"),
}
DEFAULT_KEYS = ("lambda", "n_s", "cycles", "batch_size", "n_train", "n_val")
# Config paths already shown through a key column (so they are not added again as "varying").
SHOWN_AS = {
    "lambda": "lambda",
    "train.n_s": "n_s",
    "train.n_s_epochs": "n_s",
    "train.cycles": "cycles",
    "train.eta_min": "eta_min",
    "train.eta_max": "eta_max",
    "train.eta": "eta",
    "train.epochs": "epochs",
    "train.batch_size": "batch_size",
}
HEADERS = {
    "lambda": "λ",
    "eta_min": "η_min",
    "eta_max": "η_max",
    "eta": "η",
    "n_s": "n_s",
    "cycles": "cycles",
    "epochs": "epochs",
    "batch_size": "batch",
    "n_train": "n_train",
    "n_val": "n_val",
    "n": "n",
    "seeds": "seeds",
    "chosen": "chosen",
    "train_acc": "train acc (%)",
    "val_acc": "val acc (%)",
    "test_acc": "test acc (%)",
    "final_train_loss": "train loss",
    "final_val_loss": "val loss",
    "train_s": "train time (s)",
    "dtype": "dtype",
    "case": "case",
    "n_samples": "samples",
    "dims": "dims",
    "param": "param",
    "n_entries": "entries checked",
    "grad_max": "max abs grad",
    "abs_err_max": "max abs err",
    "abs_err_mean": "mean abs err",
    "max_rel_error": "max rel err",
    "tolerance": "tolerance",
    "passed": "passed",
}


@dataclass
class Table:
    name: str
    frame: pd.DataFrame  # numeric, what the CSV holds
    markdown: str


def pick_source(runs: pd.DataFrame, experiments) -> tuple[pd.DataFrame, str | None, list[str]]:
    """The runs of these experiments on one data source: real data first, then the most runs.

    Mixing sources in one table would compare unlike things; the others are only named.
    """
    sub = runs[runs["experiment"].isin(list(experiments))]
    if sub.empty:
        return sub, None, []
    counts = sub.groupby("data_source").agg(n=("path", "size"), synthetic=("synthetic", "max"))
    order = sorted(
        counts.index, key=lambda s: (bool(counts.loc[s, "synthetic"]), -int(counts.loc[s, "n"]), s)
    )
    return sub[sub["data_source"] == order[0]], order[0], order[1:]


def varying_config_keys(runs: pd.DataFrame, results: dict) -> list[str]:
    """Config paths that differ between the configurations in runs and no key column shows."""
    firsts = runs.drop_duplicates("group")
    if len(firsts) < 2:
        return []
    flats = [flatten(results[p]["config"]) for p in firsts["path"]]
    keys = sorted(set().union(*flats))
    return [
        k
        for k in keys
        if not is_neutral(k)
        and k != "name"
        and k not in SHOWN_AS
        and not k.startswith("search.")
        and len({json.dumps(f.get(k), sort_keys=True, default=str) for f in flats}) > 1
    ]


def aggregate(rows: pd.DataFrame, keys: list[str], metrics, flags=()) -> pd.DataFrame:
    """One row per configuration group: key columns, n, seeds, <metric>_mean and _std (ddof=1).

    flags: boolean columns that hold for the group only if they hold for every seed.
    """
    rows = rows.sort_values(["group", "seed"], kind="stable")
    out = []
    for _, g in rows.groupby("group", sort=True):
        rec = {k: g[k].iloc[0] for k in keys}
        rec["n"] = len(g)
        rec["seeds"] = ",".join(str(int(s)) for s in sorted(g["seed"]))
        rec.update({f: bool(g[f].all()) for f in flags})
        for m in metrics:
            vals = pd.to_numeric(g[m], errors="coerce")
            rec[f"{m}_mean"] = vals.mean()
            rec[f"{m}_std"] = vals.std() if len(g) > 1 else np.nan
        out.append(rec)
    cols = (
        list(keys)
        + list(flags)
        + ["n", "seeds"]
        + [f"{m}_{s}" for m in metrics for s in ("mean", "std")]
    )
    frame = pd.DataFrame(out, columns=cols)
    return frame.sort_values(list(keys), kind="stable", na_position="last").reset_index(drop=True)


def train_table(name: str, runs: pd.DataFrame, results: dict, chosen: float | None = None) -> Table:
    """A training experiment's table; rows whose λ equals `chosen` are marked."""
    runs = runs.copy()
    extra = varying_config_keys(runs, results)
    for k in extra:
        runs[k] = [
            json.dumps(flatten(results[p]["config"]).get(k), default=str) for p in runs["path"]
        ]
    keys = list(KEYS.get(name, DEFAULT_KEYS)) + extra
    frame = aggregate(runs, keys, TRAIN_METRICS)
    if chosen is not None:
        frame.insert(
            len(keys),
            "chosen",
            np.isclose(frame["lambda"].astype(float), chosen, rtol=1e-9, atol=0),
        )
    return Table(name, frame, to_markdown(frame, TRAIN_METRICS))


def gradcheck_table(runs: pd.DataFrame, results: dict) -> Table:
    """One row per (dtype, case, parameter); n counts the seeds it was checked with."""
    recs = []
    for path, seed, group in zip(runs["path"], runs["seed"], runs["group"], strict=True):
        r = results[path]
        for ci, (case, c) in enumerate(r["gradcheck"].items()):
            for pi, (param, stats) in enumerate(c["params"].items()):
                recs.append(
                    {
                        "path": path,
                        "seed": seed,
                        "group": f"{r['dtype']}/{ci}/{pi}/{group}",
                        "dtype": r["dtype"],
                        "case_order": ci,
                        "case": case,
                        "n_samples": c["n_samples"],
                        "dims": c["dims"],
                        "param_order": pi,
                        "param": param,
                        "n_entries": stats["n_entries"],
                        "tolerance": r["tolerance"],
                        "passed": bool(stats["max_rel_error"] < r["tolerance"]),
                        **{m: stats[m] for m in GRADCHECK_METRICS},
                    }
                )
    keys = [
        "dtype",
        "case_order",
        "case",
        "n_samples",
        "dims",
        "param_order",
        "param",
        "n_entries",
        "tolerance",
    ]
    long = pd.DataFrame(
        recs, columns=["path", "seed", "group", *keys, "passed", *GRADCHECK_METRICS]
    )
    frame = aggregate(long, keys, GRADCHECK_METRICS, flags=("passed",))
    frame = frame.drop(columns=["case_order", "param_order"])
    return Table("gradcheck", frame, to_markdown(frame, GRADCHECK_METRICS))


def chosen_lambda(searches: list[dict], tables: list[Table]) -> tuple[float | None, str]:
    """The λ the search chose (its lambda_search.json), else the best mean validation accuracy."""
    if searches:
        s = searches[-1]
        return float(s["chosen_lambda"]), f"`{s['_path']}`"
    frames = [t.frame for t in tables if t is not None and not t.frame.empty]
    if not frames:
        return None, ""
    both = pd.concat(frames, ignore_index=True)
    best = both.sort_values(
        ["val_acc_mean", "lambda"], ascending=[False, True], kind="stable"
    ).iloc[0]
    return float(best["lambda"]), "the best mean validation accuracy in the tables below"


# ---------------------------------------------------------------- Markdown rendering


def _fmt_value(col: str, v: Any) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "—"
    if isinstance(v, (bool, np.bool_)):
        return "✔" if v else "✘"
    if col in ("train_acc", "val_acc", "test_acc"):
        return f"{100 * v:.2f}"
    if col in ("final_train_loss", "final_val_loss"):
        return f"{v:.4f}"
    if col == "train_s":
        return f"{v:.1f}"
    if col in ("grad_max", "abs_err_max", "abs_err_mean", "max_rel_error", "tolerance"):
        return f"{v:.2e}"
    if col == "lambda":
        return f"{v:.4g}"
    if isinstance(v, (float, np.floating)):
        return f"{int(v)}" if float(v).is_integer() and abs(float(v)) < 1e12 else f"{v:.4g}"
    return str(v)


def fmt_mean_std(col: str, mean, std) -> str:
    """ "mean ± std" in the column's unit; a lone value when there is one seed."""
    text = _fmt_value(col, mean)
    if std is not None and not (isinstance(std, float) and np.isnan(std)):
        text += f" ± {_fmt_value(col, std)}"
    return text


def to_markdown(frame: pd.DataFrame, metrics) -> str:
    keys = [
        c
        for c in frame.columns
        if not any(c == f"{m}_{s}" for m in metrics for s in ("mean", "std"))
    ]
    header = [HEADERS.get(c, c) for c in keys] + [HEADERS.get(m, m) for m in metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in frame.iterrows():
        cells = []
        for c in keys:
            v = row[c]
            cells.append(
                "**◀ chosen**"
                if c == "chosen" and v
                else ("" if c == "chosen" else _fmt_value(c, v))
            )
        cells += [fmt_mean_std(m, row[f"{m}_mean"], row[f"{m}_std"]) for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
