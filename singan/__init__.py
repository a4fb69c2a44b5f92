"""singan: a faithful, fast PyTorch reimplementation of SinGAN (ICCV 2019) and ConSinGAN.

One interface for both methods: ``train_model(image, config)`` trains SinGAN or ConSinGAN by
the type of ``config``; ``load_model(folder)`` returns either, as a ``TrainedModel``;
``read_image(path)`` gives an image file as the [1, 3, H, W] tensor in [-1, 1] they take.
"""
from .api import load_model, model_folder, train_model
from .driver import TrainingStopped
from .errors import SinGANError
from .image_io import read_image
from .interface import TrainedModel
from .methods.consingan.hparams import ConSinGANConfig
from .methods.singan.hparams import SinGANConfig
from .methods.singan.model import TrainedPyramid
from .progress import ProgressEvent

__all__ = ["ConSinGANConfig", "ProgressEvent", "SinGANConfig", "SinGANError", "TrainedModel",
           "TrainedPyramid", "TrainingStopped", "load_model", "model_folder", "read_image",
           "train_model"]
__version__ = "0.3.0"
