"""Classic augmentations: albumentations pipelines applied jointly to image and mask, seeded."""

from advaug.augment.pipeline import Pipeline, TransformedPairs, sample_seed, transformed_copies

__all__ = ["Pipeline", "TransformedPairs", "sample_seed", "transformed_copies"]
