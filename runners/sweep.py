"""Run a sweep on Ray (see mlp/commands/sweep.py): `python runners/sweep.py -m experiment=NAME lambda=a,b seed=0,1`.

The same as the installed console script; needs the package installed (`pip install -e .`)."""

from mlp.commands.sweep import main

if __name__ == "__main__":
    main()
