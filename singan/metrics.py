"""Quality measures for random samples: the paper's diversity and SIFID (arXiv 1905.01164, 4)."""
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np
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


# ---- the one sample-quality report (random_samples.py, the studio, the folder runner) ----------

@dataclass(frozen=True)
class SIFIDOptions:
    """SIFID's own options (SIFID/sifid_score.py): the feature layer, backbone, weights file."""
    dims: int = 64
    backbone: str = "torchvision"
    weights: Optional[str] = None


def sifid_unavailable(options: SIFIDOptions) -> Optional[str]:
    """Why SIFID cannot be measured with these options (the weights are missing), or None.
    Looks for the file only (never downloads)."""
    from SIFID import SIFIDError   # stands apart from singan; imported on demand
    from SIFID.sifid import find_fid_inception_weights, find_torchvision_weights
    try:
        if options.backbone == "fid-inception":
            find_fid_inception_weights(options.weights)
        else:
            find_torchvision_weights(options.weights, download=False)
    except SIFIDError as err:
        return str(err)
    return None


SIFID_SKIPPED = "SIFID skipped"   # how a QualityReport's note says SIFID could not be measured


@dataclass
class QualityReport:
    """The figures of one batch of samples against the training image: the paper's diversity
    (from 2 samples on) and, when asked for, SIFID per sample; notes say why one is missing."""
    count: int
    diversity: Optional[float] = None
    sifid_label: str = "SIFID"
    sifid: Optional[List[float]] = None
    notes: List[str] = field(default_factory=list)

    @property
    def sifid_mean(self) -> Optional[float]:
        return None if not self.sifid else float(np.mean(self.sifid))

    def lines(self) -> List[str]:
        """The report as lines for people."""
        out = []
        if self.diversity is not None:
            out.append(f"diversity: {self.diversity:.4f} (per-pixel std across samples / std "
                       "of the training image)")
        if self.sifid:
            values = np.asarray(self.sifid)
            out.append(f"{self.sifid_label}: mean {values.mean():.4f}, std {values.std():.4f} "
                       f"over {len(values)} samples")
        return out + self.notes


def sample_quality(samples: torch.Tensor, real: torch.Tensor,
                   sifid: Optional[SIFIDOptions] = None, extractor=None) -> QualityReport:
    """Diversity and (sifid given) SIFID of samples [N, 3, h, w] against the training image
    real [1, 3, H, W]. SIFID compares the samples with the image at its own size: samples of
    another size (arbitrary sizes) get a note instead. SIFID that cannot be measured (no
    weights here; nothing is downloaded) is a note too, never an error."""
    report = QualityReport(len(samples))
    if len(samples) >= 2:
        report.diversity = diversity(samples, real)
    if (sifid is not None or extractor is not None) and samples.shape[2:] != real.shape[2:]:
        report.notes.append("SIFID: only for samples of the training image's size")
        return report
    if sifid is not None or extractor is not None:
        from SIFID import SIFIDError
        options = sifid or SIFIDOptions()
        try:
            report.sifid_label, report.sifid = sifid_scores(
                samples, real, options.weights, samples.device, options.backbone, options.dims,
                extractor)
        except SIFIDError as err:
            report.notes.append(f"{SIFID_SKIPPED}: {str(err).splitlines()[0]}")
    return report
