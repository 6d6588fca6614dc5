"""The single-run progress line: in place on a terminal, one line per record point elsewhere."""

from __future__ import annotations

import io
import json
import re

import pytest
from conftest import SMALL_SYNTHETIC, run_cli

from mlp import run_progress
from mlp.experiment import run_experiment

LINE = re.compile(
    r"\[train\] step +(\d+)/(\d+) \( *\d+%\)  loss (\S+)  elapsed \d:\d\d:\d\d  ETA (\S+)"
)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_one_line_per_record_point(cfg_factory):
    out = io.StringIO()
    run_progress.enable(out)
    try:
        result = run_experiment(
            cfg_factory(["experiment=cyclic_1cycle", *SMALL_SYNTHETIC, "train.n_s=10"])
        )
    finally:
        run_progress.disable()
    lines = out.getvalue().splitlines()
    parsed = [LINE.fullmatch(line) for line in lines]
    assert all(parsed), lines
    hist = result["history"]
    assert [int(m.group(1)) for m in parsed] == [h["step"] for h in hist]
    assert {int(m.group(2)) for m in parsed} == {20}
    assert [float(m.group(3)) for m in parsed] == [round(h["train_loss"], 4) for h in hist]
    assert parsed[0].group(4) == "?" and parsed[-1].group(4) == "0:00:00"


def test_on_a_terminal_redrawn_in_place_and_ended_with_a_newline(cfg_factory):
    term = Terminal()
    run_progress.enable(term)
    try:
        run_experiment(cfg_factory(["experiment=cyclic_1cycle", *SMALL_SYNTHETIC, "train.n_s=10"]))
    finally:
        run_progress.disable()
    text = term.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1
    frames = [f.removesuffix("\x1b[K\n").removesuffix("\x1b[K") for f in text.split("\r")[1:]]
    steps = [int(LINE.fullmatch(f).group(1)) for f in frames]
    assert steps == sorted(steps) and steps[-1] == 20


def test_next_redraw_is_due_after_the_interval():
    p = run_progress.RunProgress(1000, Terminal(), interval_s=0.25)
    p.start -= 1.0  # one second in, at step 100: 100 steps/s, so the next redraw after 25 steps
    p.step(100)
    assert 120 <= p.next_step <= 125
    silent = run_progress.RunProgress(1000, None)
    assert silent.next_step == float("inf")  # the training loop never calls step()


def test_sweep_jobs_stay_silent(cfg_factory, capsys):
    run_progress.disable()
    run_experiment(cfg_factory(["experiment=cyclic_1cycle", *SMALL_SYNTHETIC, "train.n_s=5"]))
    assert "[train]" not in capsys.readouterr().err


@pytest.mark.slow
def test_mlp_train_prints_the_line_to_stderr(tmp_path):
    proc = run_cli(
        "train.py",
        "experiment=cyclic_1cycle",
        *SMALL_SYNTHETIC,
        "train.n_s=20",
        f"hydra.run.dir={tmp_path}",
    )
    assert proc.returncode == 0, proc.stderr
    hist = json.loads((tmp_path / "result.json").read_text())["history"]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("[train]")]
    assert len(lines) == len(hist) and all(LINE.fullmatch(ln) for ln in lines)
