"""Sweeps on Ray: many experiments as Ray tasks, results gathered on the driver, resumable.

STARTED_AT marks the driver's start (runners/sweep.py imports this first), so start-up
latency can be measured from the moment the user pressed enter, not from when Ray came up.
"""

import time

STARTED_AT = time.time()
