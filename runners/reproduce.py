"""Reproduce the study and its report (see mlp/commands/reproduce.py): `python runners/reproduce.py [--quick]`.

The same as the installed console script; needs the package installed (`pip install -e .`)."""

from mlp.commands.reproduce import main

if __name__ == "__main__":
    main()
