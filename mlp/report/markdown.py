"""Small Markdown pieces of REPORT.md: notes, config blocks, figure links, the skipped-files list."""

from __future__ import annotations

from pathlib import PurePath

from omegaconf import OmegaConf

from mlp.result_schema import is_placement_key


def short_source(source: str) -> str:
    """A data source as `kind: file name` (the reader's folders are not the machine's)."""
    kind, sep, where = source.partition(": ")
    return f"{kind}{sep}{PurePath(where).name}" if sep and "/" in where else source


def portable_config(config: dict) -> tuple[dict, list[str]]:
    """The config without run-placement keys (where it ran, its cache, BLAS threads) and with
    data.root as a file name; returns it and the dotted keys left out."""
    dropped: list[str] = []

    def walk(node: dict, prefix: str) -> dict:
        out = {}
        for k, v in node.items():
            dotted = f"{prefix}{k}"
            if is_placement_key(dotted):
                dropped.append(dotted)
            elif isinstance(v, dict):
                out[k] = walk(v, dotted + ".")
            else:
                out[k] = v
        return out

    clean = walk(config, "")
    root = clean.get("data", {}).get("root")
    if isinstance(root, str) and "/" in root:
        clean["data"]["root"] = PurePath(root).name
    return clean, dropped


def synthetic_note() -> str:
    return (
        "> **⚠️ SYNTHETIC DATA.** These numbers come from the built-in synthetic stand-in "
        "(`data=synthetic`), not from CIFAR-10. They show the pipeline works; they say nothing "
        "about the study. Re-run on real data (`data=cifar10_jpeg` or `data=cifar10`).\n"
    )


def source_line(source: str, synthetic: bool, others: list[str]) -> str:
    text = (
        f"Data source: `{short_source(source)}`" + (" — **SYNTHETIC**" if synthetic else "") + ".\n"
    )
    if others:
        named = ", ".join(f"`{short_source(o)}`" for o in others)
        text += (
            "\nResults on other data sources were found and left out of this section "
            f"(pass their folder to `mlp-report` to report them): {named}.\n"
        )
    if synthetic:
        text += "\n" + synthetic_note()
    return text


def missing(what: str, command: str) -> str:
    return f"_No results for {what}._ Produce them with:\n\n```bash\n{command}\n```\n"


def config_block(experiment: str, config: dict, paths: list[str], n_configs: int) -> str:
    """Which experiment config, which result files, and the resolved config itself (collapsed)."""
    shown = "\n".join(f"- `{p}`" for p in paths)
    config, placement = portable_config(config)  # how/where it ran, not what it computed
    lam = config.get("lambda")
    more = (
        f" The section holds {n_configs} configurations (the table's rows); the resolved config below is the one "
        f"with λ = {lam:.4g}."
        if n_configs > 1 and isinstance(lam, (int, float))
        else ""
    )
    return (
        f"Config: [`conf/experiment/{experiment}.yaml`](../../conf/experiment/{experiment}.yaml)"
        f" with the overrides recorded in each result.{more}\n\n"
        f"<details><summary>Resolved config and result files</summary>\n\n"
        f"```yaml\n{OmegaConf.to_yaml(OmegaConf.create(config))}```\n\n"
        + (
            f"(Run-placement keys left out: {', '.join(f'`{k}`' for k in placement)}; "
            "data.root shown as its file name.)\n\n"
            if placement
            else ""
        )
        + f"{shown}\n\n</details>\n"
    )


def figure(name: str, alt: str) -> str:
    return f"![{alt}](figures/{name}.png)\n"


def table_links(name: str) -> str:
    return f"([CSV](tables/{name}.csv), [Markdown](tables/{name}.md))\n"


def reproduction_line(r: dict) -> str:
    """How long the runs took, per reproduce.py invocation (a resumed one only does what was missing)."""
    lines = [f"Runs made by `mlp-reproduce` (profile {r.get('profile')}; `{r['_path']}`):\n"]
    for inv in r["invocations"][-5:]:
        steps = ", ".join(f"{k} {v:.0f} s" for k, v in inv.get("steps_s", {}).items())
        cmd = " ".join(["mlp-reproduce", *map(short_argument, inv.get("argv", []))])
        lines.append(
            f"- `{cmd}`: **{inv.get('runs_s', float('nan')) / 60:.1f} min** of runs ({steps})"
        )
    return "\n".join(lines) + "\n"


def short_argument(arg: str) -> str:
    """key=/abs/path/file -> key=file: the report names no machine's folders."""
    key, sep, value = arg.partition("=")
    return f"{key}={PurePath(value).name}" if sep and value.startswith("/") else arg


def problems_section(problems: list[tuple[str, str]]) -> str:
    if not problems:
        return "No result file was skipped.\n"
    lines = ["These files were found but not used:\n", "| file | reason |", "|---|---|"]
    lines += [f"| `{p}` | {why.replace('|', '/')} |" for p, why in problems]
    return "\n".join(lines) + "\n"
