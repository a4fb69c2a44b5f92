"""The applications, one module each, over the TrainedModel interface only: generation, sr,
harmonize, paint, animation, evaluate (and tensorboard_log); no web framework, no Ray."""
