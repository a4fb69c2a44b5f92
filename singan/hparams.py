"""singan.hparams, public: SinGAN's module now lives in singan/methods/singan/hparams.py."""
from .methods.singan.hparams import *  # noqa: F401,F403
