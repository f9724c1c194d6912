"""Datasets: the on-disk folder format, the synthetic phantom and the DataModule."""

from advaug.data.datamodule import SegmentationDataModule
from advaug.data.synthetic import SyntheticPhantomGenerator

__all__ = ["SegmentationDataModule", "SyntheticPhantomGenerator"]
