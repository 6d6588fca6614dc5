"""Config checks that run before any data is read or any step is taken."""

from __future__ import annotations

from mlp.errors import UserError

DTYPES = ("float64", "float32")
KINDS = ("train", "gradcheck")
SCHEDULES = ("cyclic", "constant")
RECORDS = ("curve", "final")


def _positive_int(value, key: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UserError(f"{key}={value!r} must be a whole number ≥ 1")


def check_split(split) -> None:
    """The split's own consistency (no data needed): checked before any job starts."""
    train_batches = list(split.train_batches)
    if not train_batches:
        raise UserError("split.train_batches is empty (name at least one batch, 1..5)")
    if (split.val_batch is None) == (split.val_holdout is None):
        raise UserError("split: set exactly one of split.val_batch and split.val_holdout")
    if split.val_batch is not None and split.val_batch in train_batches:
        raise UserError(f"split.val_batch={split.val_batch} is also a training batch")


def check_config(cfg) -> None:
    if cfg.kind not in KINDS:
        raise UserError(f"kind={cfg.kind!r} is not allowed (allowed: {', '.join(KINDS)})")
    if cfg.dtype not in DTYPES:
        raise UserError(f"dtype={cfg.dtype!r} is not allowed (allowed: {', '.join(DTYPES)})")
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool) or cfg.seed < 0:
        raise UserError(f"seed={cfg.seed!r} must be a whole number ≥ 0")
    lam = cfg["lambda"]
    if lam is not None and (not isinstance(lam, (int, float)) or isinstance(lam, bool) or lam < 0):
        raise UserError(f"lambda={lam!r} must be a number ≥ 0")
    _positive_int(cfg.model.hidden, "model.hidden")
    t = cfg.train
    if t.schedule not in SCHEDULES:
        raise UserError(
            f"train.schedule={t.schedule!r} is not allowed (allowed: {', '.join(SCHEDULES)})"
        )
    _positive_int(t.batch_size, "train.batch_size")
    if t.schedule == "cyclic":
        if not 0 < t.eta_min <= t.eta_max:
            raise UserError(
                f"train.eta_min={t.eta_min} and train.eta_max={t.eta_max} "
                "must satisfy 0 < eta_min ≤ eta_max"
            )
        if t.n_s is not None:
            _positive_int(t.n_s, "train.n_s")
        else:
            _positive_int(t.n_s_epochs, "train.n_s_epochs")
        _positive_int(t.cycles, "train.cycles")
    else:
        if not t.eta > 0:
            raise UserError(f"train.eta={t.eta} must be > 0")
        _positive_int(t.epochs, "train.epochs")
    _positive_int(t.record_points_per_cycle, "train.record_points_per_cycle")
    if t.get("record", "curve") not in RECORDS:
        raise UserError(f"train.record={t.record!r} is not allowed (allowed: {', '.join(RECORDS)})")
    if t.record_every is not None:
        _positive_int(t.record_every, "train.record_every")
    if t.blas_threads is not None:
        _positive_int(t.blas_threads, "train.blas_threads")
    if t.get("rung") is not None:
        check_rung(t)
    check_split(cfg.split)
    if lam is None and "search" not in cfg:
        raise UserError(
            "lambda=null needs a search interval (search.low, search.high) to draw it from"
        )
    if "search" in cfg and "low" in cfg.search and not 0 < cfg.search.low <= cfg.search.high:
        raise UserError(
            f"search.low={cfg.search.low} and search.high={cfg.search.high} must satisfy 0 < low ≤ high"
        )


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_rung(t) -> None:
    """train.rung {start, stop}: a part of a cyclic run, in cycles, 0 ≤ start < stop ≤ cycles
    (start null: 0; stop null: train.cycles)."""
    if t.schedule != "cyclic":
        raise UserError(
            f"train.rung needs train.schedule=cyclic (rungs are cycles), not {t.schedule!r}"
        )
    unknown = sorted(set(t.rung) - {"start", "stop"})
    if unknown:
        raise UserError(f"train.rung.{unknown[0]} is not a rung key (allowed: start, stop)")
    start = t.rung.get("start") or 0
    stop = t.rung.get("stop")
    stop = t.cycles if stop is None else stop
    if not _number(start) or not _number(stop) or not 0 <= start < stop <= t.cycles:
        raise UserError(
            f"train.rung start={t.rung.get('start')!r}, stop={t.rung.get('stop')!r} must satisfy "
            f"0 ≤ start < stop ≤ train.cycles={t.cycles} (cycles; null: 0 and train.cycles)"
        )


def check_data_fits(cfg, n_train: int) -> None:
    """Checks that need the split sizes (after loading, still before training)."""
    if cfg.kind == "train" and cfg.train.batch_size > n_train:
        raise UserError(
            f"train.batch_size={cfg.train.batch_size} is larger than the training set ({n_train} images)"
        )
    if (
        cfg.kind == "train"
        and cfg.train.schedule == "cyclic"
        and cfg.train.n_s is None
        and cfg.train.n_s_epochs * (n_train // cfg.train.batch_size) < 1
    ):
        raise UserError(
            f"n_s would be 0 for {n_train} training images at batch size {cfg.train.batch_size}"
        )
