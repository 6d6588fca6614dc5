"""The default: a private local Ray instance started for the sweep (here with 2 CPUs),
Hydra's sweep syntax (glob, choice, range, several keys), quiet output."""
from __future__ import annotations

from sweep_support import SMALL, ray_processes, results, rows, run_sweep, summary, wait_gone


def test_default_local_instance_with_hydra_sweep_syntax(tmp_path):
    before = ray_processes()
    proc = run_sweep(tmp_path, "-m", "experiment=glob(cyclic_1*)", *SMALL, "lambda=choice(0,0.01)",
                     "seed=range(0,2)", "sweep.ray.num_cpus=2", env_extra={"RAY_ADDRESS": ""})
    assert proc.returncode == 0, proc.stderr
    table = rows(tmp_path / "sw")
    assert sorted((r["experiment"], float(r["lambda"]), int(r["seed"])) for r in table) == \
        [("cyclic_1cycle", lam, s) for lam in (0.0, 0.01) for s in (0, 1)]
    s = summary(tmp_path / "sw")
    assert s["ray_address"] == "local" and s["ran"] == 4 and s["startup_to_first_job_s"] > 0
    assert all(r["task_wall_s"] >= r["train_s"] > 0 for r in results(tmp_path / "sw"))
    # Ray's own log lines stay off the driver's terminal: only the progress line and the summary
    assert all(line.startswith("[sweep]") for line in proc.stderr.strip().splitlines()), proc.stderr
    assert "4 jobs: 4 ran" in proc.stdout
    # the local instance is gone with the driver (its start overlapped the jobs' composition)
    assert not wait_gone(ray_processes() - before)
    assert s["ray_start_s"] > 0 and s["ray_shutdown_s"] >= 0
    # the same command again in the same folder: everything is stored, so Ray is not even started
    again = run_sweep(tmp_path, "-m", "experiment=glob(cyclic_1*)", *SMALL, "lambda=choice(0,0.01)",
                      "seed=range(0,2)", "sweep.ray.num_cpus=2", env_extra={"RAY_ADDRESS": ""})
    assert again.returncode == 0, again.stderr
    s = summary(tmp_path / "sw")
    assert (s["ran"], s["cached"], s["ray_address"]) == (0, 4, None)
