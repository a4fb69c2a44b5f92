"""read_image's decoding, each from a fact about the file itself: the colour a LAB file holds,
the EXIF orientation 6 ("rotate 90 degrees clockwise to display"), the 16-bit levels and the
pages a TIFF was written with, and which reader a file's format (not its name) needs."""

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from singan.image_io import read_image

ORIENTATION = 0x0112            # the EXIF / TIFF Orientation tag; 6: rotate 90 degrees clockwise


def _levels(x):
    """The 0..255 levels of a [1, 3, H, W] tensor in [-1, 1], as [H, W, 3]."""
    return ((x[0] + 1) / 2 * 255).round().to(torch.int64).permute(1, 2, 0)


def _sixteen_bit(levels):
    """What read_image gives for 16-bit levels: level / 65535, mapped to [-1, 1]."""
    return torch.tensor(levels, dtype=torch.float64) / 65535 * 2 - 1


def test_a_lab_tiff_reads_as_the_rgb_colours_it_holds(tmp_path):
    colours = [(200, 30, 60), (255, 255, 255), (0, 0, 0), (128, 128, 128)]
    rgb = Image.new("RGB", (len(colours), 1))
    rgb.putdata(colours)
    rgb.convert("LAB").save(tmp_path / "lab.tif")           # CIELab samples (TIFF photometric 8)
    x = read_image(tmp_path / "lab.tif")
    assert x.shape == (1, 3, 1, len(colours))
    got = _levels(x)[0]
    assert (got - torch.tensor(colours)).abs().max() <= 3, got.tolist()


def _upright_corner(x):
    """Where the stored top-left block lies once the image is shown: 'top right' after
    orientation 6, 'top left' when the orientation was ignored."""
    h, w = x.shape[-2:]
    block = {"top left": x[0, :, : h // 4, : w // 2], "top right": x[0, :, : h // 4, w // 2:]}
    return max(block, key=lambda name: block[name].mean().item())


def test_a_cmyk_jpeg_is_turned_upright_by_its_exif_orientation(tmp_path):
    img = Image.new("CMYK", (32, 16), (0, 0, 0, 255))             # 16 rows of 32, black
    img.paste((0, 0, 0, 0), (0, 0, 8, 8))                          # a white block top left
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    img.save(tmp_path / "c.jpg", exif=exif.tobytes(), quality=95)
    x = read_image(tmp_path / "c.jpg")
    assert x.shape == (1, 3, 32, 16)                               # upright: 32 rows of 16
    assert _upright_corner(x) == "top right"
    assert x[0, :, :8, 8:].mean() > 0.9 and x[0, :, 8:].mean() < -0.9   # white there, black below


def test_a_multi_page_cmyk_tiff_reads_its_first_page_as_rgb(tmp_path):
    red = Image.new("CMYK", (5, 3), (0, 255, 255, 0))              # CMYK (0, 255, 255, 0): red
    green = Image.new("CMYK", (5, 3), (255, 0, 255, 0))            # CMYK (255, 0, 255, 0): green
    red.save(tmp_path / "c.tif", save_all=True, append_images=[green])
    x = read_image(tmp_path / "c.tif")
    assert x.shape == (1, 3, 3, 5)
    assert (_levels(x) == torch.tensor([255, 0, 0])).all()


@pytest.mark.parametrize("suffix", [".tif", ".tiff"])
def test_a_sixteen_bit_colour_tiff_keeps_every_level(tmp_path, suffix):
    levels = np.array([[[0, 1, 2], [256, 257, 258]],
                       [[32767, 32768, 32769], [65533, 65534, 65535]]], np.uint16)
    tifffile.imwrite(tmp_path / f"deep{suffix}", levels, photometric="rgb")
    x = read_image(tmp_path / f"deep{suffix}")
    assert x.shape == (1, 3, 2, 2)
    expected = _sixteen_bit(levels.tolist()).permute(2, 0, 1)[None]
    assert torch.allclose(x.double(), expected, rtol=0, atol=1e-7)
    assert x[0, 0, 0, 1] < x[0, 1, 0, 1]                           # 256 below 257: kept apart


@pytest.mark.parametrize("written", ["as one stack", "page by page"])
def test_a_multi_page_tiff_reads_its_first_page(tmp_path, written):
    pages = np.stack([np.full((3, 4, 3), level, np.uint8) for level in (10, 20, 30)])
    if written == "as one stack":                     # one series of three pages
        tifffile.imwrite(tmp_path / "pages.tif", pages, photometric="rgb")
    else:                                             # three series of one page
        with tifffile.TiffWriter(tmp_path / "pages.tif") as tif:
            for page in pages:
                tif.write(page, photometric="rgb")
    with tifffile.TiffFile(tmp_path / "pages.tif") as tif:
        assert len(tif.pages) == 3
    x = read_image(tmp_path / "pages.tif")
    assert x.shape == (1, 3, 3, 4)
    assert (_levels(x) == 10).all()


def test_a_png_named_tif_is_read_as_the_png_it_is(tmp_path):
    pixels = np.zeros((3, 4, 3), np.uint8)
    pixels[..., 0], pixels[..., 1], pixels[..., 2] = 10, 20, 30
    pixels[2, 3] = (250, 200, 150)
    (tmp_path / "x.tif").write_bytes(iio.imwrite("<bytes>", pixels, extension=".png"))
    x = read_image(tmp_path / "x.tif")
    assert _levels(x).tolist() == pixels.tolist()


def test_a_bigtiff_is_turned_upright_by_its_orientation_tag(tmp_path):
    """A BigTIFF (.btf, 8-bit RGB) with Orientation 6 reads as an image viewer shows it."""
    pixels = np.zeros((16, 32, 3), np.uint8)
    pixels[:8, :8] = 255                                           # a white block top left
    tifffile.imwrite(tmp_path / "big.btf", pixels, photometric="rgb", bigtiff=True,
                     extratags=[(ORIENTATION, "H", 1, 6, True)])
    x = read_image(tmp_path / "big.btf")
    assert x.shape == (1, 3, 32, 16)
    assert _upright_corner(x) == "top right"


def test_a_float_tiff_that_pillow_cannot_open_is_read_by_another_reader(tmp_path):
    """Pillow has no 3-channel float mode; tifffile reads the BigTIFF's float samples."""
    pixels = np.array([[[0.0, 0.25, 0.5], [0.75, 1.0, 0.125]]], np.float32)
    tifffile.imwrite(tmp_path / "render.btf", pixels, photometric="rgb", bigtiff=True)
    x = read_image(tmp_path / "render.btf")
    assert x.shape == (1, 3, 1, 2)
    assert x[0].permute(1, 2, 0).tolist() == (pixels * 2 - 1).tolist()   # [0, 1] -> [-1, 1]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_tif_is_shown_as_its_orientation_tag_says(tmp_path, orientation):
    """Every Orientation (1-8) of an 8-bit RGB .tif read as Pillow's exif_transpose shows it:
    the tifffile reader ignored the tag, so a TIFF stored sideways trained sideways."""
    pixels = np.random.default_rng(orientation).integers(0, 256, (3, 5, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "x.tif", pixels, photometric="rgb",
                     extratags=[(ORIENTATION, "H", 1, orientation, True)])
    from PIL import ImageOps
    with Image.open(tmp_path / "x.tif") as image:
        shown = np.asarray(ImageOps.exif_transpose(image))
    assert _levels(read_image(tmp_path / "x.tif")).numpy().tolist() == shown.tolist()


def test_a_sixteen_bit_tiff_stored_sideways_comes_upright_with_its_levels(tmp_path):
    """A 16-bit .tiff (which Pillow cannot read) with Orientation 6: a white block stored top
    left shows top right, and its levels stay 16-bit."""
    pixels = np.zeros((16, 32, 3), np.uint16)
    pixels[:8, :8] = 65535
    pixels[15, 31] = 257                                   # stored bottom right: shown bottom left
    tifffile.imwrite(tmp_path / "deep.tiff", pixels, photometric="rgb",
                     extratags=[(ORIENTATION, "H", 1, 6, True)])
    x = read_image(tmp_path / "deep.tiff")
    assert x.shape == (1, 3, 32, 16)
    assert _upright_corner(x) == "top right"
    assert x[0, :, 31, 0].double().tolist() == pytest.approx(_sixteen_bit([257] * 3).tolist(),
                                                             abs=1e-7)


@pytest.mark.parametrize("orientation", [0, 9])
def test_an_orientation_outside_1_to_8_leaves_the_tif_as_stored(tmp_path, orientation):
    """TIFF's Orientation tag has the values 1-8; another is no turn at all (1), not an error."""
    pixels = np.random.default_rng(5).integers(0, 256, (3, 5, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "x.tif", pixels, photometric="rgb",
                     extratags=[(ORIENTATION, "H", 1, orientation, True)])
    assert _levels(read_image(tmp_path / "x.tif")).numpy().tolist() == pixels.tolist()
