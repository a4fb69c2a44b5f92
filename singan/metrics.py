"""Quality measures for random samples: the paper's diversity and SIFID (arXiv 1905.01164, 4)."""
from typing import Optional

import torch


def diversity(samples: torch.Tensor, real: torch.Tensor) -> float:
    """The paper's diversity: the per-pixel standard deviation across samples, averaged over
    pixels and channels, divided by the standard deviation of the training image's values.

    samples [N, 3, H, W] and real [1, 3, H, W] share a value range (e.g. [-1, 1]); N >= 2.
    """
    if samples.shape[0] < 2:
        raise ValueError("diversity needs at least 2 samples")
    return float(samples.float().std(dim=0).mean() / real.float().std())


def sifid_scores(samples: torch.Tensor, real: torch.Tensor, weights: Optional[str] = None,
                 device="cpu", backbone: str = "torchvision", dims: int = 64, extractor=None):
    """SIFID of each sample against the training image, as (label, [values]). `extractor`
    (SIFID.load_extractor's) is reused when given, else loaded for dims/backbone/weights.

    Raises SIFID's own SIFIDError when the Inception weights cannot be found (no download).
    """
    from SIFID import load_extractor, sifid   # stands apart from singan; imported on demand
    if extractor is None:
        extractor = load_extractor(dims, backbone, weights, device, download=False)
    real01 = ((real[:1].float() + 1) / 2).clamp(0, 1).cpu()
    values = [sifid(real01, ((s[None].float() + 1) / 2).clamp(0, 1).cpu(), extractor)
              for s in samples]
    label = "SIFID (FID-Inception weights)" if backbone == "fid-inception" else "SIFID"
    return label, values
