"""ConSinGAN (Hinz, Fisher, Wang, Wermter, WACV 2021, arXiv 2003.11512): one generator that
grows by a stage at a time, several stages trained concurrently with scaled learning rates,
and the same applications as SinGAN (SPEC section 10).

Layers: hparams.py, pyramid.py, models.py (the networks) -> model.py (a trained model and its
checkpoint) -> augment.py, train.py (the concurrent training) -> apps.py (training an image
file, fine-tuning, samples, harmonization/editing, animation, evaluation).
"""
from .apps import (animate, dilate_mask, evaluate, fine_tune_model, harmonize, mask_path,
                   model_folder, open_consingan, output_folder, random_samples, train_model,
                   write_gif)
from .hparams import ConSinGANConfig
from .model import ConSinGAN, is_consingan

__all__ = ["ConSinGAN", "ConSinGANConfig", "animate", "dilate_mask", "evaluate",
           "fine_tune_model", "harmonize", "is_consingan", "mask_path", "model_folder",
           "open_consingan", "output_folder", "random_samples", "train_model", "write_gif"]
