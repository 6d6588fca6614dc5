"""The layout version of result.json: readers (report, sweep store) skip other versions.

A module of its own so the sweep driver can key its store without importing the numerics."""
RESULT_VERSION = 1
