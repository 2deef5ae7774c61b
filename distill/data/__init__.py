"""Crack datasets on disk: readers, validation and splits."""

from distill.data.datasets import (
    CrackDataset,
    DatasetError,
    Sample,
    open_dataset,
)

__all__ = ["CrackDataset", "DatasetError", "Sample", "open_dataset"]
