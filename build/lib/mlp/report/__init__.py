"""The study's report: gather results → tables → figures → REPORT.md (reads results only, never trains)."""
