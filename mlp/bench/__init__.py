"""Benchmark parts for `mlp-bench`: each module measures one group of figures
and returns table rows (mlp.bench.table.Row); nothing here asserts a speed."""
