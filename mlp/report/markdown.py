"""Small Markdown pieces of REPORT.md: notes, config blocks, figure links, the skipped-files list."""
from __future__ import annotations

from omegaconf import OmegaConf


def synthetic_note() -> str:
    return ("> **⚠️ SYNTHETIC DATA.** These numbers come from the built-in synthetic stand-in "
            "(`data=synthetic`), not from CIFAR-10. They show the pipeline works; they say nothing "
            "about the study. Re-run on real data (`data=cifar10_jpeg` or `data=cifar10`).\n")


def source_line(source: str, synthetic: bool, others: list[str]) -> str:
    text = f"Data source: `{source}`" + (" — **SYNTHETIC**" if synthetic else "") + ".\n"
    if others:
        text += ("\nResults on other data sources were found and left out of this section "
                 f"(pass their folder to `runners/report.py` to report them): {', '.join(f'`{o}`' for o in others)}.\n")
    if synthetic:
        text += "\n" + synthetic_note()
    return text


def missing(what: str, command: str) -> str:
    return f"_No results for {what}._ Produce them with:\n\n```bash\n{command}\n```\n"


def config_block(experiment: str, config: dict, paths: list[str], n_configs: int) -> str:
    """Which experiment config, which result files, and the resolved config itself (collapsed)."""
    shown = "\n".join(f"- `{p}`" for p in paths)
    placement = [k for k in ("sweep", "hydra") if k in config]  # how/where a sweep ran it, not what it computed
    config = {k: v for k, v in config.items() if k not in placement}
    lam = config.get("lambda")
    more = (f" The section holds {n_configs} configurations (the table's rows); the resolved config below is the one "
            f"with λ = {lam:.4g}." if n_configs > 1 and isinstance(lam, (int, float)) else "")
    return (f"Config: [`conf/experiment/{experiment}.yaml`](../../conf/experiment/{experiment}.yaml)"
            f" with the overrides recorded in each result.{more}\n\n"
            f"<details><summary>Resolved config and result files</summary>\n\n"
            f"```yaml\n{OmegaConf.to_yaml(OmegaConf.create(config))}```\n\n"
            + (f"(Run-placement keys left out: {', '.join(f'`{k}.*`' for k in placement)}.)\n\n" if placement else "")
            + f"{shown}\n\n</details>\n")


def figure(name: str, alt: str) -> str:
    return f"![{alt}](figures/{name}.png)\n"


def table_links(name: str) -> str:
    return f"([CSV](tables/{name}.csv), [Markdown](tables/{name}.md))\n"


def reproduction_line(r: dict) -> str:
    """How long the runs took, per reproduce.py invocation (a resumed one only does what was missing)."""
    lines = [f"Runs made by `runners/reproduce.py` (profile {r.get('profile')}; `{r['_path']}`):\n"]
    for inv in r["invocations"][-5:]:
        steps = ", ".join(f"{k} {v:.0f} s" for k, v in inv.get("steps_s", {}).items())
        cmd = " ".join(["python runners/reproduce.py", *inv.get("argv", [])])
        lines.append(f"- `{cmd}`: **{inv.get('runs_s', float('nan')) / 60:.1f} min** of runs ({steps})")
    return "\n".join(lines) + "\n"


def problems_section(problems: list[tuple[str, str]]) -> str:
    if not problems:
        return "No result file was skipped.\n"
    lines = ["These files were found but not used:\n", "| file | reason |", "|---|---|"]
    lines += [f"| `{p}` | {why.replace('|', '/')} |" for p, why in problems]
    return "\n".join(lines) + "\n"
