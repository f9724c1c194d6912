"""GAN augmentation baseline: a pix2pix-style conditional GAN (mask -> image), trained once per
dataset split and seed, then sampled to fill the extra-sample pool."""

from advaug.gan.module import Pix2PixGAN
from advaug.gan.recipe import GanRecipe

__all__ = ["GanRecipe", "Pix2PixGAN"]
