"""singan: a faithful, fast PyTorch reimplementation of SinGAN (ICCV 2019) and ConSinGAN."""
from .checkpoint import load_model
from .errors import SinGANError
from .sampling import TrainedPyramid

__all__ = ["load_model", "SinGANError", "TrainedPyramid"]
__version__ = "0.1.0"
