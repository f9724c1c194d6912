"""advaug: adversarial-attack-driven data augmentation for medical image segmentation."""
