"""How many jobs a sweep will launch, read from its primary config before any job is composed
(for Hydra callbacks, which get only the config at on_multirun_start).

The count follows the mlp sweeper (hydra_plugins/mlp_sweep/mlp_sweeper.py): with a `search`
chosen, the search's stages (mlp.sweep.search); otherwise the product of the sweep overrides'
lengths (mlp.sweep.grid, which expands them). Cached jobs count too.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf


def searching(config: DictConfig) -> bool:
    """A `search` group is chosen (search=lambda|halving); an experiment's own `search:` node
    (lambda_fine's draw interval) is not a search."""
    return OmegaConf.select(config, "hydra.runtime.choices.search") is not None


def sweep_plan(config: DictConfig) -> list[tuple[str | None, int]] | None:
    """[(stage, jobs), ...] in launch order (one (None, n) for a plain sweep; job numbers run on
    across stages); None when the count needs more than the command line (a glob over a config
    group) or the arguments are bad (the sweeper then says why)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from mlp.sweep.grid import grid

    try:
        arguments = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
        overrides = OverridesParser.create().parse_overrides([str(a) for a in arguments or []])
        if searching(config):
            return _search_plan(config, overrides)
        return [(None, len(grid(overrides)))]  # the jobs the sweeper will launch
    except Exception:  # noqa: BLE001  (unknown size; the caller copes without it)
        return None


def _search_plan(config: DictConfig, overrides) -> list[tuple[str | None, int]]:
    """The λ search (mlp.sweep.search.run_search): each coarse λ, then search.fine.n λ, each
    with every seed; with search.halving, each rung of each stage."""
    from mlp.sweep.search import split_overrides

    search = config.search
    _, seeds = split_overrides(overrides)
    n_seeds = len(seeds) if seeds is not None else len(search.seeds)
    stages = [("coarse", len(search.coarse.grid)), ("fine", int(search.fine.n))]
    halving = search.get("halving")
    if halving is None:
        return [(stage, n * n_seeds) for stage, n in stages]
    from mlp.sweep.halving import keep_count  # search=halving: one launch per rung

    plan: list[tuple[str | None, int]] = []
    for stage, n in stages:  # as many λ go on as keep_count keeps (fewer if some fail)
        for r in range(1, len(halving.rungs) + 2):
            plan.append((f"{stage}-rung{r}", n * n_seeds))
            n = keep_count(n, float(halving.eta))
    return plan


def total_jobs(plan: list[tuple[str | None, int]] | None) -> int | None:
    return None if plan is None else sum(n for _, n in plan)


def stage_of(plan: list[tuple[str | None, int]] | None, num: int) -> str | None:
    """The stage job number `num` belongs to (None: a plain sweep, or the plan is unknown)."""
    end = 0
    for stage, n in plan or []:
        end += n
        if num < end:
            return stage
    return None


def task_overrides(config: DictConfig) -> tuple[dict[str, str], dict[str, str]]:
    """The command line's overrides of the job config: ({key: value} of the fixed ones,
    {key: sweep as written} of the swept ones); ({}, {}) if they cannot be parsed."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    fixed: dict[str, str] = {}
    swept: dict[str, str] = {}
    try:
        arguments = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
        for ov in OverridesParser.create().parse_overrides([str(a) for a in arguments or []]):
            key = ov.get_key_element().lstrip("+~")
            if ov.is_sweep_override():  # as written: 0,0.01 / range(0,5) / glob(*)
                swept[key] = str(ov.input_line).partition("=")[2]
            else:
                fixed[key] = "(deleted)" if ov.is_delete() else ov.get_value_element_as_str()
    except Exception:  # noqa: BLE001
        return {}, {}
    return fixed, swept
