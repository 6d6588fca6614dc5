"""Data layer: read a CIFAR-10 source once (cached, memory-mapped), then cut the study's splits."""

from mlp.data.sources import RawData, load_raw
from mlp.data.splits import Dataset, Split, build_dataset

__all__ = ["RawData", "load_raw", "Dataset", "Split", "build_dataset"]
