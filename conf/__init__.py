"""The study's Hydra configs, shipped inside the package as `mlp.conf` (see setup.py)."""
