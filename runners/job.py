"""Write one sweep job's folder from the store (see mlp/commands/job.py): `python runners/job.py SWEEP_DIR JOB`.

The same as the installed console script; needs the package installed (`pip install -e .`)."""

from mlp.commands.job import main

if __name__ == "__main__":
    main()
