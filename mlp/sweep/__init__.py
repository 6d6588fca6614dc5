"""Sweeps on Ray: many experiments as Ray tasks, results gathered on the driver, resumable."""
