"""Versions that decide whether a stored result can stand for a run of this code.

RESULT_VERSION: the layout of result.json; readers (report, sweep store) skip other versions.
NUMERICS_VERSION: the training/evaluation arithmetic. Bump it when a change alters the numbers
a config and seed produce (even by rounding), so a resumed sweep retrains instead of mixing
results of old and new code. 2: the normalisation's mean folded into the GEMMs, float32 W1
column-major, chunked evaluation through SciPy's gemm (2026-11-27).

A module of its own so the sweep driver can key its store without importing the numerics."""

RESULT_VERSION = 1
NUMERICS_VERSION = 2
