"""Every performance figure of the project, measured side by side, as one table.

  mlp-bench                       # all parts but halving (about 5 minutes on 2 cores)
  mlp-bench --parts halving       # search=halving against search=lambda on real data (~10 min)
  mlp-bench --parts peak,step     # just the training step against the GEMM peak
  mlp-bench --quick               # small sizes, no end-to-end runs or sweep (~30 s)

Prints the table and writes outputs/benchmarks/<date>.csv and .md (`--out` to change).
Run it alone on the machine (e.g. under `flock /tmp/cpu.lock`): other load skews every figure.
A tool, not a test: it reports figures and targets, it asserts none of them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import sys
import tempfile
from pathlib import Path

from mlp.bench import bundle, e2e, floor, halving, peak, steps, sweep, sweep_scale
from mlp.bench import data as bdata
from mlp.bench.machine import machine_line
from mlp.bench.table import Row, as_text, write

PARTS = ("peak", "step", "data", "train", "sweep", "bundle", "sweep-scale", "floor", "halving")
DEFAULT_PARTS = PARTS[:-1]  # halving (three real-data searches and 9 final models) on request
QUICK_PARTS = ("peak", "step", "data")
NAN = float("nan")
# The team's shared archive, relative to the repository (the folder mlp-bench runs from), like
# conf/data/cifar10_jpeg.yaml's default; CIFAR10_JPEG_ROOT wins there and here.
ARCHIVE = Path(os.environ.get("CIFAR10_JPEG_ROOT", "../shared/data/cifar10-jpeg.tar.gz"))


def _csv(text: str, conv=str) -> list:
    return [conv(t) for t in text.split(",") if t.strip()]


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--parts",
        default=None,
        help=f"comma list of {','.join(PARTS)} (default: all but halving; --quick: "
        f"{','.join(QUICK_PARTS)})",
    )
    ap.add_argument(
        "--quick", action="store_true", help="small sizes: a smoke run of the tool itself"
    )
    ap.add_argument("--dtypes", default="float64,float32")
    ap.add_argument(
        "--threads", default=None, help="BLAS thread counts (default: 1 and all cores; quick: 1)"
    )
    ap.add_argument(
        "--steps", type=int, default=None, help="steps per timed block (default 200; quick 20)"
    )
    ap.add_argument(
        "--repeats", type=int, default=None, help="interleaved timed blocks (default 9; quick 3)"
    )
    ap.add_argument(
        "--peak-n", type=int, default=None, help="size of the square GEMM (default 2048; quick 512)"
    )
    ap.add_argument(
        "--archive", type=Path, default=ARCHIVE, help="image-folder archive for the decode figures"
    )
    ap.add_argument("--no-torch", action="store_true", help="leave PyTorch out even when installed")
    ap.add_argument("--scale-sizes", default=None, help="sweep-scale: job counts (default 10000)")
    ap.add_argument(
        "--halving-dir",
        default=None,
        help="halving: keep the searches' folders here (default: a temporary folder)",
    )
    ap.add_argument("--tag", default="", help="file name suffix: <date>-<tag>.csv|md")
    ap.add_argument("--out", type=Path, default=Path("outputs/benchmarks"))
    args = ap.parse_args(argv)
    args.parts = (
        _csv(args.parts) if args.parts else list(QUICK_PARTS if args.quick else DEFAULT_PARTS)
    )
    bad = [p for p in args.parts if p not in PARTS]
    if bad:
        ap.error(f"unknown part(s) {', '.join(bad)} (allowed: {', '.join(PARTS)})")
    args.dtypes = _csv(args.dtypes)
    if any(d not in ("float64", "float32") for d in args.dtypes):
        ap.error(f"--dtypes {','.join(args.dtypes)}: allowed float64, float32")
    default_threads = [1] if args.quick else sorted({1, os.cpu_count() or 1})
    args.threads = _csv(args.threads, int) if args.threads else default_threads
    if any(t < 1 for t in args.threads):
        ap.error("--threads: thread counts must be ≥ 1")
    args.steps = args.steps or (20 if args.quick else 200)
    args.repeats = args.repeats or (3 if args.quick else 9)
    args.peak_n = args.peak_n or (512 if args.quick else 2048)
    return args


def _threads_label(t: int) -> str:
    return f"{t} thread" + ("s" if t > 1 else "")


def part_peak(args, rows: list[Row]) -> dict:
    peaks = {}
    for dtype in args.dtypes:
        for t in args.threads:
            peaks[dtype, t] = peak.gemm_peak(
                dtype, t, n=args.peak_n, repeats=2 if args.quick else 5
            )
            rows.append(
                Row(
                    "peak",
                    f"GEMM peak {dtype}, {_threads_label(t)}",
                    peaks[dtype, t],
                    "GFLOP/s",
                    f"best of {2 if args.quick else 5} {args.peak_n}³ matmuls",
                )
            )
    return peaks


def part_step(args, rows: list[Row], peaks: dict) -> None:
    no_torch = "left out (--no-torch)" if args.no_torch else steps.torch_available()
    for dtype in args.dtypes:
        for t in args.threads:
            res = steps.measure(
                dtype,
                t,
                args.steps,
                args.repeats,
                with_torch=no_torch is None,
                extra=not args.quick,
                n_rows=2000 if args.quick else 10_000,
            )
            label = f"{dtype}, {_threads_label(t)}"
            for impl, sps in res.samples_per_s.items():
                pk = peaks.get((dtype, t))
                frac = f"{res.gflops[impl]:.1f} GFLOP/s" + (
                    f" = {100 * res.gflops[impl] / pk:.0f}% of GEMM peak" if pk else ""
                )
                rows.append(Row("step", f"{impl} step, batch 100, {label}", sps, "samples/s", frac))
            for name, ratio in res.ratios.items():
                rows.append(
                    Row(
                        "step",
                        f"ratio {name}, {label}",
                        ratio,
                        "×",
                        f"median of {res.repeats} interleaved blocks of {res.steps} steps",
                    )
                )
            fresh = steps.plain_in_fresh_process(dtype, t, args.steps, max(3, args.repeats // 3))
            rows.append(
                Row(
                    "step",
                    f"numpy step in a fresh process, batch 100, {label}",
                    fresh,
                    "samples/s",
                    "glibc malloc as a new process starts: the loop's temporaries page-fault every step",
                )
            )
            rows.append(
                Row(
                    "step",
                    f"ratio project/numpy-fresh-process, {label}",
                    res.samples_per_s["project"] / fresh,
                    "×",
                    "project's in-process median / the child's median (not interleaved)",
                )
            )
            if no_torch:
                rows.append(
                    Row("step", f"pytorch step, batch 100, {label}", NAN, "samples/s", no_torch)
                )


def part_data(args, rows: list[Row]) -> None:
    if args.quick:
        with tempfile.TemporaryDirectory(prefix="bench-jpeg-") as tmp:
            first, cached, n = bdata.time_image_folder(
                bdata.write_image_folder(Path(tmp) / "imgs", 10)
            )
        what = f"generated folder, {n} JPEGs"
    elif args.archive.exists():
        first, cached, n = bdata.time_image_folder(args.archive.resolve())
        what = f"{args.archive.name}, {n:,} JPEGs"
    else:
        rows.append(
            Row("data", "image-folder first decode", NAN, "s", f"{args.archive}: not found")
        )
        first = None
    if first is not None:
        rows.append(Row("data", "image-folder first decode (into a fresh cache)", first, "s", what))
        rows.append(Row("data", "image-folder cached load (memory-mapped)", cached, "s", what))
    per_batch = 500 if args.quick else 10_000
    parse, first_off, n = bdata.time_official(per_batch)
    rows.append(
        Row("data", "official pickle load (6 batch files)", parse, "s", f"generated, {n:,} images")
    )
    rows.append(
        Row(
            "data",
            "official first load into a fresh cache",
            first_off,
            "s",
            f"generated, {n:,} images",
        )
    )


def part_train(args, rows: list[Row]) -> None:
    data = "data=synthetic" if args.quick else "data=cifar10_jpeg"
    r = e2e.run_train(["experiment=cyclic_3cycles", data])
    res = r["result"]
    rows.append(
        Row(
            "train",
            f"cyclic_3cycles end to end ({res['steps']:,} steps, {data})",
            r["wall_s"],
            "s",
            f"train {res['train_s']:.1f} s (eval {res['eval_s']:.1f} s), load {res['load_s']:.2f} s, "
            f"{res['samples_per_s']:,.0f} samples/s; target < 25 s",
        )
    )
    r = e2e.run_train(["experiment=final", data, "dtype=float64"])
    res = r["result"]
    rows.append(
        Row(
            "train",
            f"final, float64: peak RSS ({res['n_train']:,} train images)",
            r["peak_rss_gib"],
            "GiB",
            f"wall {r['wall_s']:.1f} s, test acc {res['test_acc']:.3f}; target < 1.5 GiB",
        )
    )


def run(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    now = dt.datetime.now(dt.UTC)
    machine = machine_line()
    command = "mlp-bench " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )
    print(f"machine: {machine}", flush=True)
    rows: list[Row] = [Row("machine", "machine", machine)]
    peaks = part_peak(args, rows) if "peak" in args.parts else {}
    if "step" in args.parts:
        part_step(args, rows, peaks)
    if "data" in args.parts:
        part_data(args, rows)
    if "train" in args.parts:
        part_train(args, rows)
    if "sweep" in args.parts:
        sweep.part_sweep(args, rows)
    if "bundle" in args.parts:
        part_bundle(args, rows)
    if "sweep-scale" in args.parts:
        sweep_scale.part_sweep_scale(args, rows)
    if "floor" in args.parts:
        floor.part_floor(args, rows)
    if "halving" in args.parts:
        halving.part_halving(args, rows)
    header = f"Command: `{command.strip()}`  \nDate: {now:%Y-%m-%d %H:%M} UTC  \nMachine: {machine}"
    stem = (
        f"{now:%Y-%m-%d}" + ("-quick" if args.quick else "") + (f"-{args.tag}" if args.tag else "")
    )
    csv_path, md_path = write(rows[1:], args.out, stem, header)
    print(as_text(rows[1:]))
    print(f"wrote {csv_path} and {md_path}")
    return 0


def part_bundle(args, rows: list[Row]) -> None:
    """Bundle of k vs k separate steps and vs its GEMMs alone (1 thread, interleaved blocks); a
    search job's time split, alone and in a bundle."""
    ks = (1, 2, 4) if args.quick else bundle.KS
    for dtype in args.dtypes:
        for k in ks:
            r = bundle.measure(
                dtype, k, args.steps, args.repeats, n_rows=2000 if args.quick else 10_000
            )
            label = f"k = {k}, {dtype}, 1 thread"
            rows.append(
                Row(
                    "bundle",
                    f"bundle step, {label}",
                    r.per_model["bundle"],
                    "samples/s per model",
                    f"bundle {r.gflops['bundle']:.1f} GFLOP/s; "
                    f"its GEMMs alone {r.gflops['GEMMs-alone']:.1f}",
                )
            )
            rows.append(
                Row(
                    "bundle",
                    f"{k} separate steps, {dtype}, 1 thread",
                    r.per_model["separate"],
                    "samples/s per model",
                    f"{r.gflops['separate']:.1f} GFLOP/s",
                )
            )
            for name, ratio in r.ratios.items():
                rows.append(
                    Row(
                        "bundle",
                        f"ratio {name}, {label}",
                        ratio,
                        "×",
                        f"median of {r.repeats} interleaved blocks of {r.steps} steps",
                    )
                )
    data = (
        [*sweep.QUICK_SEARCH_DATA, "train.n_s=10"]
        if args.quick
        else ["data=cifar10_jpeg", f"data.root={args.archive.resolve()}"]
    )
    k = 3
    for variant, parts in bundle.job_split(data, k).items():
        note = ", ".join(f"{key} {v:.2f} s" for key, v in parts.items() if key != "wall")
        rows.append(
            Row(
                "bundle",
                f"search job (lambda_coarse, 3 cycles), {variant}",
                parts["wall"],
                "s",
                note,
            )
        )


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
