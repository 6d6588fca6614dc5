"""Bad input on the command line: one line on stderr naming the value, exit code 2, no result written."""

import pytest
from conftest import SMALL_SYNTHETIC, run_cli


@pytest.mark.slow
@pytest.mark.parametrize(
    "args,needle",
    [
        (["lambda=-0.1"], "lambda=-0.1"),
        (["train.eta_min=0.2", "train.eta_max=0.1"], "train.eta_min=0.2"),
        (["train.n_s=0"], "train.n_s=0"),
        (["train.batch_size=5000"], "train.batch_size=5000"),
        (["experiment=nonsense"], "unknown experiment 'nonsense'"),
        (["data=imagenet"], "unknown data 'imagenet'"),
        (["dtype=float16"], "dtype='float16'"),
        (["data.root=/nonexistent/cifar.tar.gz"], "/nonexistent/cifar.tar.gz"),
        (["train.no_such_key=3"], "train.no_such_key"),
        (["lambda=[1,2"], "lambda=[1,2"),
    ],
)
def test_bad_value_fails_with_one_line(tmp_path, args, needle):
    out = tmp_path / "run"
    data = (
        ["data=cifar10_jpeg"] if any(a.startswith("data.root") for a in args) else SMALL_SYNTHETIC
    )
    proc = run_cli("train.py", *data, *args, f"hydra.run.dir={out}")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], proc.stderr
    assert not (out / "result.json").exists()


@pytest.mark.slow
def test_good_run_prints_result_path_last(tmp_path):
    out = tmp_path / "run"
    proc = run_cli("train.py", *SMALL_SYNTHETIC, "train.n_s=10", f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == str(out / "result.json")
    assert "SYNTHETIC" in proc.stdout


@pytest.mark.slow
def test_basic_launcher_multirun_still_works(tmp_path):
    proc = run_cli(
        "train.py", "-m", *SMALL_SYNTHETIC, "train.n_s=5", "seed=0,1", f"hydra.sweep.dir={tmp_path}"
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.parent.name for p in tmp_path.glob("*/result.json")) == ["0", "1"]
