"""Every performance figure as one table (see mlp/commands/benchmark.py): `python runners/benchmark.py [--quick]`.

The same as the installed console script; needs the package installed (`pip install -e .`)."""

from mlp.commands.benchmark import main

if __name__ == "__main__":
    main()
