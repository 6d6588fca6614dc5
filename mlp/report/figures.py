"""The study's figures as matplotlib Figure objects (no pyplot state), saved as reproducible PNGs."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import (
    Figure,  # Figure objects render with Agg; pyplot (and a GUI) is never loaded
)

from mlp.atomic import write_atomic
from mlp.schedule import cyclic_eta

DPI = 110
COLORS = {"train": "tab:blue", "val": "tab:orange", "coarse": "tab:blue", "fine": "tab:green"}
PANELS = (("loss", "cross-entropy loss"), ("cost", "cost (loss + λ‖W‖²)"), ("acc", "accuracy (%)"))


def lr_schedule_figure(eta_min: float, eta_max: float, n_s: int, steps: int) -> Figure:
    """η_t of the triangular schedule over steps 0..steps (the study's figure 1)."""
    t = np.arange(steps + 1)
    fig = Figure(figsize=(7, 3.6))
    ax = fig.add_subplot()
    ax.plot(
        t,
        cyclic_eta(t, eta_min, eta_max, n_s),
        color="tab:blue",
        lw=1.8,
        label=f"η_min={eta_min:g}, η_max={eta_max:g}, n_s={n_s}",
    )
    ax.set(
        title="Cyclic learning rate (triangular)",
        xlabel="update step t",
        ylabel="learning rate η_t",
        xlim=(0, steps),
    )
    span = eta_max - eta_min or eta_max
    ax.set_ylim(eta_min - 0.05 * span, eta_max + 0.35 * span)  # headroom for the legend
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def history_frame(histories: list[list[dict]]) -> pd.DataFrame:
    """Seeds' histories stacked (seed index in 'run'); accuracies in %."""
    frames = []
    for i, h in enumerate(histories):
        f = pd.DataFrame(h)
        f["run"] = i
        frames.append(f)
    df = pd.concat(frames, ignore_index=True)
    for split in ("train", "val"):
        df[f"{split}_acc"] = 100 * df[f"{split}_acc"]
    return df


def history_figure(histories: list[list[dict]], title: str) -> Figure:
    """Loss, cost and accuracy against update step, train and validation; a ±std band over seeds."""
    df = history_frame(histories)
    n = df["run"].nunique()
    stats = df.groupby("step").agg(["mean", "std"]).sort_index()
    fig = Figure(figsize=(13, 3.9))
    axes = fig.subplots(1, 3)
    for ax, (metric, ylabel) in zip(axes, PANELS, strict=True):
        for split, label in (("train", "training"), ("val", "validation")):
            col = f"{split}_{metric}"
            mean, std = stats[(col, "mean")], stats[(col, "std")]
            ax.plot(
                stats.index,
                mean,
                color=COLORS[split],
                lw=1.6,
                label=label if n == 1 else f"{label} (mean of {n} seeds)",
            )
            if n > 1:
                ax.fill_between(
                    stats.index,
                    mean - std,
                    mean + std,
                    color=COLORS[split],
                    alpha=0.2,
                    lw=0,
                    label=f"{label} ± 1 std",
                )
        ax.set(title=ylabel.split(" (")[0].capitalize(), xlabel="update step", ylabel=ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def lambda_figure(
    stages: dict[str, pd.DataFrame], chosen: float | None, study_best: float | None
) -> Figure:
    """Validation accuracy against λ (log axis), one series per search stage, error bars = std over seeds."""
    fig = Figure(figsize=(7.5, 4.2))
    ax = fig.add_subplot()
    markers = {"coarse": "o", "fine": "s"}
    for stage, frame in stages.items():
        if frame is None or frame.empty:
            continue
        n = frame["n"]
        ax.errorbar(
            frame["lambda"],
            100 * frame["val_acc_mean"],
            yerr=100 * frame["val_acc_std"].fillna(0),
            fmt=markers.get(stage, "^"),
            color=COLORS.get(stage, "tab:gray"),
            capsize=3,
            ms=5,
            label=f"{stage} search (n={int(n.min())}–{int(n.max())} seeds)"
            if n.min() != n.max()
            else f"{stage} search (n={int(n.min())} seed{'s' if n.min() > 1 else ''})",
        )
    if chosen is not None:
        ax.axvline(chosen, color="tab:red", lw=1.4, label=f"chosen λ = {chosen:.4g}")
    if study_best is not None:
        ax.axvline(
            study_best, color="black", ls="--", lw=1, label=f"study's best λ ≈ {study_best:g}"
        )
    ax.set_xscale("log")
    ax.set(
        title="λ search: validation accuracy (mean ± std over seeds)",
        xlabel="λ (L2 penalty, log scale)",
        ylabel="validation accuracy (%)",
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


RUNG_COLORS = ("tab:blue", "tab:orange", "tab:red", "tab:purple", "tab:brown")


def halving_figure(halving: dict, full: dict | None) -> Figure:
    """Validation accuracy (mean over seeds) per λ at each rung of a successive-halving search,
    one panel per stage; the full search's λ at the full budget in grey, for comparison."""
    stages = list(halving["stages"])
    fig = Figure(figsize=(4.2 * len(stages), 4.0))
    for i, stage in enumerate(stages):
        ax = fig.add_subplot(1, len(stages), i + 1)
        if full is not None and full.get(stage):
            rows = [r for r in full[stage] if r.get("val_acc_mean") is not None]
            ax.plot(
                [r["lambda"] for r in rows],
                [100 * r["val_acc_mean"] for r in rows],
                "x",
                color="tab:gray",
                ms=7,
                label="full search (full budget)",
            )
        for j, rung in enumerate(halving["stages"][stage]):
            rows = [r for r in rung["table"] if r.get("val_acc_mean") is not None]
            stop = rung["stop_cycles"]
            ax.plot(
                [r["lambda"] for r in rows],
                [100 * r["val_acc_mean"] for r in rows],
                "o",
                mfc="none" if stop is not None else RUNG_COLORS[j % len(RUNG_COLORS)],
                color=RUNG_COLORS[j % len(RUNG_COLORS)],
                ms=4 + 2 * j,
                label=f"rung {rung['rung']}: "
                + (
                    f"{stop:g} cycle{'' if stop == 1 else 's'}"
                    if stop is not None
                    else "full budget"
                )
                + f", {len(rows)} λ",
            )
        ax.set_xscale("log")
        ax.set(title=f"{stage} stage", xlabel="λ (log scale)", ylabel="validation accuracy (%)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle("Successive halving: validation accuracy per λ at each rung (mean over seeds)")
    fig.tight_layout()
    return fig


def save_png(fig: Figure, path: Path) -> None:
    """PNG without the matplotlib version/date metadata, written atomically: same figure, same bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    write_atomic(path, buf.getvalue())
