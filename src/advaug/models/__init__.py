"""The segmentation LightningModule."""

from advaug.models.segmentation import SegmentationModule

__all__ = ["SegmentationModule"]
