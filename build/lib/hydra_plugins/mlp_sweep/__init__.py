"""Hydra plugins of mlp-study: the `mlp` sweeper and the `mlp_ray` launcher (found by Hydra's plugin scan)."""
