"""ConSinGAN (Hinz, Fisher, Wang, Wermter, WACV 2021, arXiv 2003.11512): one generator that
grows by a stage at a time, several stages trained concurrently with scaled learning rates,
and the same applications as SinGAN (SPEC section 10), through the same TrainedModel
interface (train it with singan.train_model(image, ConSinGANConfig(...)), load it with
singan.load_model).

Layers: hparams.py, pyramid.py, models.py (the networks) -> model.py (a trained model and its
checkpoint) -> augment.py, train.py (the concurrent training, fine-tuning).
"""
from .hparams import ConSinGANConfig
from .model import ConSinGAN

__all__ = ["ConSinGAN", "ConSinGANConfig"]
