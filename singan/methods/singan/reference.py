"""The reference SinGAN code's folders (STYLE habit 4): importing them as a TrainedPyramid.

Both reference codes save a TrainedModels folder of their own layout, which we read but never
write over (the training driver refuses such a folder):

- the reference SinGAN: per scale ``n/netG.pth`` (state dicts), at the top ``Zs.pth``,
  ``NoiseAmp.pth``, ``reals.pth`` and the pickled ``Gs.pth``;
- the reference ConSinGAN: per stage ``n/netG.pth`` (the whole growing generator), at the top
  ``fixed_noise.pth``, ``noise_amp.pth``, ``reals.pth``, ``parameters.txt`` and the pickled
  ``G.pth``.

Recognising a folder needs only file names, so both tests live in singan/catalog.py, below
every method. SinGAN's folder is imported here (`import_reference_singan`); ConSinGAN's in
methods/consingan/reference.py; singan.api.import_reference_folder picks between them. The
pickled modules (Gs.pth, G.pth) are never loaded: every file read goes through
``torch.load(weights_only=True)``.
"""
import math
from pathlib import Path
from typing import Optional

from ...checkpoint import load_torch
from ...errors import SinGANError
from .model import TrainedPyramid
from .models import generator_from_state_dict


def recover_scale_factor(shapes) -> float:
    """The reference pyramid's scale factor, recovered from its reals' shapes.

    The reference computes factor = (min_size / min(real)) ** (1 / stop_scale) for an integer
    min_size, so the coarsest scale's shorter side is min_size (or one more, by float rounding).
    Every candidate is checked by rebuilding all shapes from the finest; exactly one must fit.
    """
    stop = len(shapes) - 1
    if stop < 1:
        raise SinGANError("a one-scale model has no scale factor to recover; pass scale_factor")
    fh, fw = shapes[-1]
    fitting = []
    for min_size in {min(shapes[0]), min(shapes[0]) - 1}:
        factor = math.pow(min_size / min(fh, fw), 1 / stop)
        rebuilt = [(math.ceil(fh * math.pow(factor, stop - i)),
                    math.ceil(fw * math.pow(factor, stop - i))) for i in range(stop + 1)]
        if rebuilt == [tuple(s) for s in shapes]:
            fitting.append(factor)
    if len(set(fitting)) != 1:
        raise SinGANError("cannot recover the pyramid's scale factor from reals.pth; pass it "
                          "(scale_factor=..., or --input_name/--min_size/--max_size in the "
                          "scripts)")
    return fitting[0]


def import_reference_singan(folder, scale_factor: Optional[float] = None,
                            device="cpu") -> TrainedPyramid:
    """Load a TrainedModels folder written by the reference SinGAN code.

    Reads n/netG.pth (state dicts), Zs.pth, NoiseAmp.pth and reals.pth, all with
    weights_only=True; Gs.pth (pickled modules) is never loaded.
    """
    folder = Path(folder)
    zs = load_torch(folder / "Zs.pth")
    amps = load_torch(folder / "NoiseAmp.pth")
    reals = load_torch(folder / "reals.pth")
    if not (isinstance(zs, list) and isinstance(amps, list) and isinstance(reals, list)
            and len(zs) == len(amps) and len(reals) >= len(zs) and zs):
        raise SinGANError(f"{folder}: Zs.pth, NoiseAmp.pth and reals.pth do not describe one "
                          "pyramid (different lengths); the folder is incomplete")
    generators = [generator_from_state_dict(load_torch(folder / str(n) / "netG.pth"))
                  for n in range(len(zs))]
    if scale_factor is None:
        scale_factor = recover_scale_factor([tuple(r.shape[2:]) for r in reals])
    pad = (zs[0].shape[2] - reals[0].shape[2]) // 2
    config = {"num_layer": generators[0].num_layer, "ker_size": generators[0].ker_size,
              "imported_from": str(folder)}
    pyramid = TrainedPyramid(generators, [z.float() for z in zs], [float(a) for a in amps],
                             [r.float() for r in reals], scale_factor, pad, True, config)
    return pyramid.to(device)
