"""The two methods side by side, each a folder with the same file names for the same roles:
hparams, pyramid, models (networks), model (a trained model), train (its StageTrainer), reference."""
