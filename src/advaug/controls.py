"""The control arms every method is compared with (``aug=none``: no augmentation; ``same_steps``:
as many optimizer steps as the pool methods). They read no eps, so a sweep over eps may list them
(``config_checks``), and the report pairs each method with them (``reporting/paired.py``).
No torch import: the report reads it on machines without the training stack loaded."""

CONTROLS = ("none", "same_steps")
