"""Console entry points (`mlp-train`, `mlp-sweep`, ...); `runners/*.py` are thin wrappers over them."""
