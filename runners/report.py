"""Regenerate the report (see mlp/commands/report.py): `python runners/report.py [DIR ...] [--out DIR]`.

The same as the installed console script; needs the package installed (`pip install -e .`)."""

from mlp.commands.report import main

if __name__ == "__main__":
    main()
