"""Packages and the config mapping: `conf/` stays at the top of the repository but installs as
the package `mlp.conf`, so Hydra finds it as `pkg://mlp.conf` in editable and normal installs.
Everything else is declared in pyproject.toml."""

from setuptools import find_namespace_packages, setup

setup(
    packages=[
        *find_namespace_packages(include=["mlp", "mlp.*", "hydra_plugins", "hydra_plugins.*"]),
        "mlp.conf",
    ],
    package_dir={"mlp.conf": "conf"},
    package_data={"mlp.conf": ["*.yaml", "*/*.yaml"]},
)
