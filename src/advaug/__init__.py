"""advaug: adversarial-attack-driven data augmentation for medical image segmentation."""

import os

# albumentations asks pypi.org for its latest version at import: a warning per run offline (and a
# wait of up to 2 s where the network hangs) and a request from a machine holding patient data.
# A user who wants the check sets NO_ALBUMENTATIONS_UPDATE=0.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
