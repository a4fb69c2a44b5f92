"""ConSinGAN now lives in singan/methods/consingan/; this name stays for code that imports
singan.consingan.ConSinGAN (the README's)."""
from ..methods.consingan import ConSinGAN, ConSinGANConfig

__all__ = ["ConSinGAN", "ConSinGANConfig"]
