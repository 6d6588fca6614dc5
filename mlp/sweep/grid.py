"""Hydra's sweep grammar expanded lazily: the same jobs in the same order as Hydra's
BasicSweeper (every combination of the swept values, the last key varying fastest), but
generated one at a time, so a sweep of a million jobs never holds its job list.

A `range()` of whole numbers stays a Python range (no list of its values); other sweeps
(choice, glob, a,b,c) are short lists.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from hydra.core.override_parser.types import Override, RangeSweep


class _Values(Sequence[str]):
    """`key=value` strings of one swept key, indexable without materialising a range."""

    def __init__(self, key: str, values: Sequence):
        self.key, self.values = key, values

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, i):
        return f"{self.key}={self.values[i]}"


def _values(ov: Override) -> Sequence[str]:
    key = ov.get_key_element()
    if not ov.is_sweep_override():
        return [f"{key}={ov.get_value_element_as_str()}"]
    if not ov.is_discrete_sweep():
        raise ValueError(f"{key}: interval sweeps need a search sweeper, not a grid")
    sweep = ov.value()  # the parsed sweep object
    if isinstance(sweep, RangeSweep) and not sweep.shuffle:
        start, stop, step = sweep.start, sweep.stop, sweep.step
        if isinstance(start, int) and isinstance(stop, int) and isinstance(step, int):
            return _Values(key, range(start, stop, step))
    return [f"{key}={v}" for v in ov.sweep_string_iterator()]


@dataclass
class Grid:
    """The jobs of a sweep as a lazily generated product of each key's values."""

    dims: list[Sequence[str]]
    swept_keys: list[str]

    def __len__(self) -> int:
        return math.prod(len(d) for d in self.dims)

    def __iter__(self) -> Iterator[list[str]]:
        sizes = [len(d) for d in self.dims]
        for n in range(len(self)):
            picks, rest = [], n
            for size in reversed(sizes):
                rest, i = divmod(rest, size)
                picks.append(i)
            picks.reverse()
            yield [d[i] for d, i in zip(self.dims, picks, strict=True)]


def grid(overrides: list[Override]) -> Grid:
    """The sweep of these parsed overrides (a key given twice: the last wins, as in Hydra)."""
    by_key: dict[str, Sequence[str]] = {}
    swept: list[str] = []
    for ov in overrides:
        key = ov.get_key_element()
        by_key[key] = _values(ov)
        if ov.is_sweep_override() and len(by_key[key]) > 1 and key.lstrip("+~") not in swept:
            swept.append(key.lstrip("+~"))
    return Grid(list(by_key.values()), swept)
