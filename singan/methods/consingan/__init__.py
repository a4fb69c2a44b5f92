"""ConSinGAN (Hinz et al., WACV 2021): one generator growing a stage at a time, several stages
trained at once; the same roles and file names as methods/singan, plus augment (harmonization)."""
from .hparams import ConSinGANConfig
from .model import ConSinGAN

__all__ = ["ConSinGAN", "ConSinGANConfig"]
