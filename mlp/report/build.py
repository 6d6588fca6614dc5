"""Assemble the report (tables, figures, REPORT.md) from gathered results, and write it out.

Pure: the same result files and report config give the same tables, figures and text.
Nothing here trains; a section without results says which command produces them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mlp.report import figures as F
from mlp.report import markdown as M
from mlp.report.gather import Gathered
from mlp.report.tables import (
    Table,
    chosen_lambda,
    fmt_mean_std,
    gradcheck_table,
    pick_source,
    train_table,
)

KNOWN = (
    "gradcheck",
    "overfit",
    "cyclic_1cycle",
    "cyclic_3cycles",
    "lambda_coarse",
    "lambda_fine",
    "final",
)
HISTORY_FIGURES = ("overfit", "cyclic_1cycle", "cyclic_3cycles", "final")
TITLES = {
    "overfit": "Overfit check (100 training images)",
    "cyclic_1cycle": "Cyclic learning rate, 1 cycle",
    "cyclic_3cycles": "Cyclic learning rate, 3 cycles",
    "final": "Final model",
}


@dataclass
class Report:
    tables: dict[str, Table] = field(default_factory=dict)
    figures: dict[str, Figure] = field(default_factory=dict)
    markdown: str = ""
    problems: list[tuple[str, str]] = field(default_factory=list)
    chosen_lambda: float | None = None


def primary_group(sub: pd.DataFrame, prefer_lambda: float | None = None) -> pd.DataFrame:
    """The configuration a figure shows: the chosen λ if present, then the most seeds, then the latest path."""
    ranked = []
    for group, g in sub.groupby("group", sort=True):
        lam_match = prefer_lambda is not None and bool(
            np.isclose(g["lambda"].iloc[0], prefer_lambda, rtol=1e-9, atol=0)
        )
        ranked.append(((lam_match, len(g), max(g["path"])), group))
    best = max(ranked)[1]
    return sub[sub["group"] == best].sort_values("seed", kind="stable")


def _seed0(g: pd.DataFrame, col: str):
    s = g[g["seed"] == 0]
    return float(s[col].iloc[0]) if len(s) else None


def _pct(x) -> str:
    return "—" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{100 * x:.2f}%"


class _Builder:
    def __init__(self, g: Gathered, cfg):
        self.g, self.cfg = g, cfg
        self.report = Report(problems=list(g.problems))
        self.parts: list[str] = []
        self.summary: list[dict] = []
        self.lambda_summary = ""

    # -------------------------------------------------------------- helpers
    def cmd(self, key: str) -> str:
        return f"{self.cfg.commands[key]}\n# or everything at once:\n{self.cfg.commands.all}"

    def header(self, sub: pd.DataFrame, source: str, others: list[str]) -> str:
        return M.source_line(source, bool(sub["synthetic"].iloc[0]), others)

    def config(self, name: str, sub: pd.DataFrame, g: pd.DataFrame) -> str:
        return M.config_block(
            name,
            self.g.results[g["path"].iloc[0]]["config"],
            list(g["path"]),
            sub["group"].nunique(),
        )

    def history_section(self, name: str, sub: pd.DataFrame, prefer_lambda=None) -> str:
        g = primary_group(sub, prefer_lambda)
        hist = [self.g.results[p]["history"] for p in g["path"]]
        lam = float(g["lambda"].iloc[0])
        n = len(g)
        seeds = f"{n} seeds" if n > 1 else f"seed {int(g['seed'].iloc[0])}"
        title = f"{TITLES.get(name, name)}: λ = {lam:.4g}, " + seeds
        if bool(g["synthetic"].iloc[0]):
            title += " [SYNTHETIC DATA]"
        self.report.figures[name] = F.history_figure(hist, title)
        return g

    def add_summary(self, name: str, g: pd.DataFrame, source: str, synthetic: bool) -> None:
        acc = pd.to_numeric(g["test_acc"])
        self.summary.append(
            {
                "experiment": name,
                "source": source,
                "synthetic": synthetic,
                "n": len(g),
                "lambda": float(g["lambda"].iloc[0]),
                "test": fmt_mean_std("test_acc", acc.mean(), acc.std() if len(g) > 1 else np.nan),
                "seed0": _seed0(g, "test_acc"),
                "study": self.cfg.study.test_acc.get(name),
                "bar": self.cfg.bars.get(name),
            }
        )

    def comparison(self, name: str, g: pd.DataFrame) -> str:
        study, bar, s0 = (
            self.cfg.study.test_acc.get(name),
            self.cfg.bars.get(name),
            _seed0(g, "test_acc"),
        )
        acc = pd.to_numeric(g["test_acc"])
        text = f"Test accuracy, ours: **{fmt_mean_std('test_acc', acc.mean(), acc.std() if len(g) > 1 else np.nan)}%**"
        text += f" (n = {len(g)}; seed 0: {_pct(s0)})" if len(g) > 1 else ""
        if study is not None:
            text += f"; the study's: **{_pct(study)}**"
        if bar is not None and s0 is not None and not bool(g["synthetic"].iloc[0]):
            text += f"; bar ≥ {_pct(bar)} (seed 0): **{'met' if s0 >= bar else 'NOT met'}**"
        return text + ".\n"

    def table(self, t: Table) -> str:
        self.report.tables[t.name] = t
        return t.markdown + "\n" + M.table_links(t.name)

    # -------------------------------------------------------------- sections
    def gradcheck(self) -> str:
        sub, source, others = pick_source(self.g.runs, ["gradcheck"])
        out = "## 1. Gradient check\n\n"
        if source is None:
            return out + M.missing("the gradient check", self.cmd("gradcheck"))
        g = primary_group(sub)
        t = gradcheck_table(sub, self.g.results)
        worst = float(pd.to_numeric(sub["max_rel_error"]).max())
        ok = bool(t.frame["passed"].all())
        return (
            out
            + self.header(sub, source, others)
            + "\n"
            + self.config("gradcheck", sub, g)
            + "\n"
            + "Analytic gradients against centred finite differences, per case and parameter "
            + "(mean ± std over seeds where several ran).\n\n"
            + self.table(t)
            + "\n"
            + f"Worst relative error: **{worst:.2e}** — {'all below' if ok else 'NOT all below'} the tolerance.\n"
        )

    def training(
        self, name: str, number: str, heading: str, prefer_lambda=None, level: str = "##"
    ) -> str:
        sub, source, others = pick_source(self.g.runs, [name])
        out = f"{level} {number}. {heading}\n\n"
        if source is None:
            return out + M.missing(f"`{name}`", self.cmd(name))
        g = self.history_section(name, sub, prefer_lambda)
        t = train_table(name, sub, self.g.results)
        if name in self.cfg.study.test_acc:
            self.add_summary(name, g, source, bool(sub["synthetic"].iloc[0]))
        text = (
            out
            + self.header(sub, source, others)
            + "\n"
            + self.config(name, sub, g)
            + "\n"
            + self.table(t)
            + "\n"
            + M.figure(name, TITLES.get(name, name))
            + "\n"
        )
        if name in self.cfg.study.test_acc:
            text += self.comparison(name, g)
        return text

    def lr_figure(self) -> str:
        s = self.cfg.lr_schedule
        self.report.figures["lr_schedule"] = F.lr_schedule_figure(
            float(s.eta_min), float(s.eta_max), int(s.n_s), int(s.steps)
        )
        return (
            "The triangular schedule, as in the study's figure 1 "
            f"(η_min = {s.eta_min}, η_max = {s.eta_max}, n_s = {s.n_s}, steps 0–{s.steps}; "
            "from `conf/report/report.yaml`, computed with `mlp.schedule.cyclic_eta`):\n\n"
            + M.figure("lr_schedule", "cyclic learning rate")
            + "\n"
        )

    def lambda_search(self) -> str:
        out = "## 4. λ search (coarse, then fine)\n\n"
        sub, source, others = pick_source(self.g.runs, ["lambda_coarse", "lambda_fine"])
        if source is None:
            return out + M.missing("the λ search", self.cmd("lambda_search"))
        stages = {}
        for name in ("lambda_coarse", "lambda_fine"):
            s = sub[sub["experiment"] == name]
            stages[name] = train_table(name, s, self.g.results) if len(s) else None
        # Only a search whose folder holds these very runs names the chosen λ (not one from other data).
        mine = [
            s
            for s in self.g.searches
            if any(p.startswith(s["_path"].rsplit("/", 1)[0] + "/") for p in sub["path"])
        ]
        chosen, how = chosen_lambda(mine, [t for t in stages.values() if t is not None])
        self.report.chosen_lambda = chosen
        text = out + self.header(sub, source, others) + "\n"
        if chosen is not None:
            text += f"Chosen λ: **{chosen:.6g}** (from {how}).\n\n"
        for name, label in (("lambda_coarse", "Coarse"), ("lambda_fine", "Fine")):
            s = sub[sub["experiment"] == name]
            text += f"### {label} search\n\n"
            if not len(s):
                text += M.missing(f"the {label.lower()} search", self.cmd("lambda_search")) + "\n"
                continue
            t = train_table(name, s, self.g.results, chosen)
            text += self.config(name, s, primary_group(s, chosen)) + "\n" + self.table(t) + "\n"
        frames = {
            k.split("_")[1]: self.report.tables[k].frame
            for k in ("lambda_coarse", "lambda_fine")
            if k in self.report.tables
        }
        self.report.figures["lambda_search"] = F.lambda_figure(
            frames, chosen, float(self.cfg.study["lambda"].best)
        )
        best = pd.concat([f for f in frames.values()], ignore_index=True)
        top = best.sort_values(
            ["val_acc_mean", "lambda"], ascending=[False, True], kind="stable"
        ).iloc[0]
        self.lambda_summary = (
            f"λ search: chosen λ = **{chosen:.4g}**; best mean validation accuracy "
            f"{_pct(top['val_acc_mean'])} at λ = {top['lambda']:.4g} (n = {int(top['n'])}). "
            f"The study: λ ≈ {self.cfg.study['lambda'].best}, "
            f"~{_pct(self.cfg.study['lambda'].val_acc)} validation accuracy.\n"
            if chosen is not None
            else ""
        )
        text += (
            M.figure("lambda_search", "validation accuracy against λ")
            + "\n"
            + f"Best mean validation accuracy, ours: **{_pct(top['val_acc_mean'])}** at λ = {top['lambda']:.4g} "
            + f"(n = {int(top['n'])}); the study's: λ ≈ {self.cfg.study['lambda'].best} with "
            + f"~{_pct(self.cfg.study['lambda'].val_acc)} validation accuracy.\n"
        )
        if not np.isnan(top["val_acc_std"]):
            close = best[best["val_acc_mean"] >= top["val_acc_mean"] - top["val_acc_std"]]
            text += (
                f"\n{len(close)} of the {len(best)} λ values tried lie within one standard deviation over seeds "
                f"({_pct(top['val_acc_std'])}) of that best mean (λ from {close['lambda'].min():.3g} "
                f"to {close['lambda'].max():.3g}): at n = {int(top['n'])} seeds "
                "the search cannot tell them apart.\n"
            )
        return text

    def halving(self) -> str:
        """4b, when a search=halving result is found: the last one against the last full search
        (search=lambda), in path order: per-rung validation accuracy, compute, wall, chosen λ."""
        out = "### 4b. λ search by successive halving\n\n"
        halvings = [s for s in self.g.searches if isinstance(s.get("halving"), dict)]
        fulls = [s for s in self.g.searches if "halving" not in s]
        if not halvings:  # an optional search: no section without one
            return ""
        h = halvings[-1]
        f = fulls[-1] if fulls else None
        hv = h["halving"]
        self.report.figures["lambda_halving"] = F.halving_figure(hv, f)
        text = out + (
            f"Search `{h['_path']}`: every λ × seed of a stage trains to the first rung, the best "
            f"⌊n/η⌋ (η = {hv['eta']:g}) by mean {h['metric']} go on from where they stopped, rungs "
            f"at {', '.join(f'{r:g}' for r in hv['rungs'])} cycles, then the full budget. "
            "A survivor's final numbers are those of the same job trained in one go.\n\n"
        )
        rows = [("successive halving", h, hv["model_steps"])]
        if f is not None:
            rows.insert(0, ("full search", f, hv.get("full_model_steps")))
            text += f"Compared with the full search `{f['_path']}`"
            if hv.get("full_model_steps") and f.get("fine") and h.get("fine"):
                same = {r["lambda"] for r in f["fine"]} == {r["lambda"] for r in h["fine"]}
                text += (
                    " (the same fine λ)"
                    if same
                    else " (other fine λ: its coarse stage chose another centre)"
                )
            text += (
                ". Its model-steps are what training every λ × seed the halving search tried "
                "to the full budget costs. Where the full search trained its λ in bundles, its "
                "numbers at a λ differ from a lone survivor's by their rounding (float32 "
                "training amplifies it), so the two searches' accuracies at one λ need not "
                "agree.\n\n"
            )
        finals = self.g.runs[self.g.runs["experiment"] == "final"] if len(self.g.runs) else None
        lines = [
            "| search | model-steps | wall (s) | chosen λ | its mean val acc | its mean test acc "
            "(search model) | final test acc (`final`, mean ± std, n) |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for label, s, steps in rows:
            lam = float(s["chosen_lambda"])
            final = "—"
            if finals is not None and len(finals):
                m = finals[np.isclose(finals["lambda"], lam, rtol=1e-9, atol=0)]
                if len(m):
                    acc = m["test_acc"].astype(float)
                    final = fmt_mean_std("test_acc", acc.mean(), acc.std(ddof=1)) + f" ({len(m)})"
            wall = s.get("_sweep_wall_s")
            lines.append(
                f"| {label} | {'—' if steps is None else f'{int(steps):,}'} | "
                f"{'—' if wall is None else f'{wall:.0f}'} | {lam:.6g} | "
                f"{_pct(s.get('fine_best_val_acc'))} | {_pct(s.get('fine_best_test_acc'))} | {final} |"
            )
        text += "\n".join(lines) + "\n\n"
        if f is not None and hv.get("full_model_steps") and hv["model_steps"]:
            text += f"Model-steps: {hv['full_model_steps'] / hv['model_steps']:.2f}× fewer"
            fw, hw = f.get("_sweep_wall_s"), h.get("_sweep_wall_s")
            if fw and hw:
                text += (
                    f"; wall: {fw / hw:.2f}× less (each sweep's `sweep.json`, Ray start included)"
                )
            text += ".\n\n"
        text += "| stage | rung | cycles | λ | jobs | model-steps | kept |\n|---|---:|---|---:|---:|---:|---|\n"
        for stage, rungs in hv["stages"].items():
            for r in rungs:
                cycles = f"{r['start_cycles']:g}–" + (
                    f"{r['stop_cycles']:g}" if r["stop_cycles"] is not None else "end"
                )
                kept = ", ".join(f"{lam:.4g}" for lam in r["kept"]) or "—"
                text += (
                    f"| {stage} | {r['rung']} | {cycles} | {len(r['lambdas'])} | {r['jobs']} | "
                    f"{r['model_steps']:,} | {kept} |\n"
                )
        return (
            text
            + "\n"
            + M.figure("lambda_halving", "validation accuracy per λ at each rung")
            + "\n"
        )

    def others(self) -> str:
        names = sorted(set(self.g.runs["experiment"]) - set(KNOWN))
        if not names:
            return ""
        text = "## 6. Other experiments\n\n"
        for name in names:
            sub, source, others = pick_source(self.g.runs, [name])
            text += f"### `{name}`\n\n" + self.header(sub, source or "", others) + "\n"
            if (sub["kind"] == "gradcheck").any():
                text += "_gradient-check results of another experiment name; not tabulated._\n\n"
                continue
            text += self.table(train_table(name, sub, self.g.results)) + "\n"
        return text

    def summary_table(self) -> str:
        if not self.summary:
            return "_No training results yet._ Run `" + self.cfg.commands.all + "`.\n"
        lines = [
            "| experiment | data | λ | n | test acc (%) ours | seed 0 | study | bar (seed 0) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for s in self.summary:
            met = (
                ""
                if s["bar"] is None or s["seed0"] is None
                else (" ✔" if s["seed0"] >= s["bar"] else " ✘")
            )
            met = " (n/a: synthetic)" if s["synthetic"] and s["bar"] is not None else met
            data = "**SYNTHETIC**" if s["synthetic"] else s["source"].split(":")[0]
            lines.append(
                f"| {s['experiment']} | {data} | {s['lambda']:.4g} | {s['n']} | {s['test']} | "
                f"{_pct(s['seed0'])} | {_pct(s['study'])} | ≥ {_pct(s['bar'])}{met} |"
            )
        return "\n".join(lines) + "\n"

    def build(self) -> Report:
        lam = self.lambda_search()  # first: the final model's figure shows the chosen λ
        body = [
            self.gradcheck(),
            self.training("overfit", "2", "Overfit check"),
            "## 3. Cyclic learning rate\n\n" + self.lr_figure(),
            self.training("cyclic_1cycle", "3a", "One cycle", level="###"),
            self.training("cyclic_3cycles", "3b", "Three cycles", level="###"),
            lam,
            self.halving(),
            self.training("final", "5", "Final model", prefer_lambda=self.report.chosen_lambda),
            self.others(),
        ]
        g = self.g
        synthetic_any = bool(g.runs["synthetic"].any()) if len(g.runs) else False
        head = [
            "# The DD2424 assignment-2 study, regenerated from results\n",
            "Generated by `mlp-report` from the result files listed in each section "
            "(it only reads results; it never trains). "
            f"{len(g.runs)} results used, {g.duplicates} duplicates ignored, {len(g.problems)} files skipped.\n",
            M.synthetic_note() if synthetic_any else "",
            *[M.reproduction_line(r) for r in g.reproductions],
            "## Summary\n",
            self.summary_table(),
            self.lambda_summary,
        ]
        tail = ["## Skipped result files\n", M.problems_section(g.problems)]
        self.report.markdown = "\n".join(p for p in head + body + tail if p).rstrip("\n") + "\n"
        return self.report


def build_report(gathered: Gathered, cfg) -> Report:
    return _Builder(gathered, cfg).build()


def write_report(report: Report, out: Path) -> None:
    """Write into a fresh sibling folder, then swap it in: no stale or half-written files remain."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (tmp / "tables").mkdir()
        (tmp / "figures").mkdir()
        for name, t in sorted(report.tables.items()):
            t.frame.to_csv(
                tmp / "tables" / f"{name}.csv",
                index=False,
                float_format="%.10g",
                lineterminator="\n",
            )
            (tmp / "tables" / f"{name}.md").write_text(t.markdown, encoding="utf-8")
        for name, fig in sorted(report.figures.items()):
            F.save_png(fig, tmp / "figures" / f"{name}.png")
        (tmp / "REPORT.md").write_text(report.markdown, encoding="utf-8")
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            os.replace(out, old / "x")
        os.chmod(tmp, 0o755)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
