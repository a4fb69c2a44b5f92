"""singan.pyramid, public: SinGAN's module now lives in singan/methods/singan/pyramid.py."""
from .methods.singan.pyramid import *  # noqa: F401,F403
