"""singan.models, public: SinGAN's module now lives in singan/methods/singan/models.py."""
from .methods.singan.models import *  # noqa: F401,F403
