"""Train the GAN baseline of ``aug=gan`` once per dataset split and seed; it is cached where
(``advaug-train-gan`` after ``pip install -e .``: the same command, from any folder.)
``python src/train.py aug=gan`` with the same dataset and seed finds it.

Examples::

    python src/train_gan.py                               # on the embedded synthetic phantoms
    python src/train_gan.py dataset=isbi2012 gan.steps=5000
    python src/train_gan.py -m seed=0,1,2                 # one generator per seed of a later sweep
"""

from advaug.run.commands import train_gan

if __name__ == "__main__":
    train_gan()
