"""Run one experiment (see mlp/commands/train.py): `python runners/train.py experiment=NAME [key=value ...]`.

The same as the installed console script; needs the package installed (`pip install -e .`)."""

from mlp.commands.train import main

if __name__ == "__main__":
    main()
