"""SIFID, the single-image FID of SinGAN (SPEC section 9): `sifid` scores two images,
`sifid_folders` two folders of paired images; `load_extractor` picks the backbone and weights."""

from .sifid import (
    InceptionFeatures,
    SIFIDError,
    SIFIDResult,
    frechet_distance,
    image_statistics,
    load_extractor,
    save_results,
    sifid,
    sifid_folders,
)

__all__ = [
    "InceptionFeatures",
    "SIFIDError",
    "SIFIDResult",
    "frechet_distance",
    "image_statistics",
    "load_extractor",
    "save_results",
    "sifid",
    "sifid_folders",
]
