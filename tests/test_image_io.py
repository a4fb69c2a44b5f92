"""singan.image_io on its own, each from a fact stated here: the value mappings of SPEC 1,
the size that hand-built headers of each format declare (their byte layouts from the formats'
specifications), the errors a user sees, and atomic writes."""
import numpy as np
import pytest
import torch

from conftest import temporaries_made
from singan.image_io import denorm, norm, to_uint8


def test_norm_and_denorm_are_the_affine_maps_of_spec_1():
    x = torch.tensor([-0.5, 0.0, 0.25, 1.0, 1.5])
    assert torch.equal(norm(x), torch.tensor([-1.0, -1.0, -0.5, 1.0, 1.0]))
    y = torch.tensor([-2.0, -1.0, 0.0, 0.5, 1.0, 3.0])
    assert torch.equal(denorm(y), torch.tensor([0.0, 0.0, 0.5, 0.75, 1.0, 1.0]))


def test_to_uint8_rounds_to_the_nearest_level():
    # level k of 255 is (k / 255) * 2 - 1; halfway between two levels rounds to even (torch)
    x = torch.tensor([-1.0, 1.0, 2 * (100 / 255) - 1, 2 * (100.4 / 255) - 1,
                      2 * (100.6 / 255) - 1]).view(1, 1, 1, 5).expand(1, 3, 1, 5)
    out = to_uint8(x)
    assert out.dtype == np.uint8 and out.shape == (1, 5, 3)
    assert out[0, :, 0].tolist() == [0, 255, 100, 100, 101]


# ---- decoded arrays -> tensors (SPEC 1: 8-bit as is, 16-bit to 0..255, floats as [0, 1]) --------

from singan.errors import SinGANError                       # noqa: E402
from singan.image_io import _to_tensor                      # noqa: E402


def _levels(t):
    """The 0..255 levels a [-1, 1] tensor holds."""
    return ((t + 1) / 2 * 255).round().to(torch.int64)


@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 1), (2, 3, 2)])
def test_gray_is_repeated_to_three_channels_and_alpha_dropped(shape):
    pixels = np.arange(6, dtype=np.uint8).reshape(2, 3) * 40
    arr = pixels.reshape(shape[:2] + ((1,) if len(shape) == 3 else ()))
    if shape == (2, 3, 2):
        arr = np.stack([pixels, np.full_like(pixels, 7)], -1)
    x = _to_tensor(arr, "p")
    assert x.shape == (1, 3, 2, 3) and x.dtype == torch.float32
    for c in range(3):
        assert _levels(x[0, c]).tolist() == pixels.tolist()


def test_colour_keeps_its_channels_and_drops_alpha():
    rgba = np.zeros((1, 2, 4), np.uint8)
    rgba[0, 0] = (255, 0, 51, 9)
    rgba[0, 1] = (0, 102, 255, 200)
    x = _to_tensor(rgba, "p")
    assert x.shape == (1, 3, 1, 2)
    assert _levels(x)[0, :, 0, 0].tolist() == [255, 0, 51]
    assert _levels(x)[0, :, 0, 1].tolist() == [0, 102, 255]
    assert torch.equal(x, _to_tensor(rgba[:, :, :3].copy(), "p"))


def test_sixteen_bit_levels_map_to_the_unit_range():
    arr = np.array([[0, 65535, 32768]], np.uint16)
    x = _to_tensor(arr, "p")
    expected = torch.tensor([0, 65535, 32768], dtype=torch.float64) / 65535 * 2 - 1
    assert torch.allclose(x[0, 0, 0].double(), expected, atol=1e-7)


def test_booleans_are_black_and_white():
    x = _to_tensor(np.array([[True, False]]), "p")
    assert x[0, 0, 0].tolist() == [1.0, -1.0]


def test_floats_are_taken_as_the_unit_range_and_clipped():
    for dtype in (np.float64, np.float32, np.float16):
        x = _to_tensor(np.array([[-0.5, 0.0, 0.25, 1.0, 2.0]], dtype), "p")
        assert x[0, 0, 0].tolist() == [-1.0, -1.0, -0.5, 1.0, 1.0] and x.dtype == torch.float32


@pytest.mark.parametrize("shape", [(2, 3, 5), (2, 2, 2, 3), (0, 3, 3), (3, 0), (3,)])
def test_arrays_that_are_not_one_still_image_are_refused(shape):
    with pytest.raises(SinGANError) as err:
        _to_tensor(np.zeros(shape, np.uint8), "where/x.png")
    shape = shape + (1,) if len(shape) == 2 else shape       # gray: one channel
    assert str(err.value) == (f"where/x.png: not a single still image (array shape {shape}); "
                              "save it as an RGB PNG or JPEG")


def test_an_unsupported_pixel_type_is_named():
    with pytest.raises(SinGANError) as err:
        _to_tensor(np.zeros((2, 2), np.complex64), "x.tif")
    assert str(err.value) == ("x.tif: unsupported pixel type complex64; save it as an 8-bit "
                              "PNG")


# ---- headers built by hand from each format's specification -------------------------------------

import struct                                               # noqa: E402
import zlib                                                 # noqa: E402

from singan.image_io import declared_size                   # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png(width, height, depth=8, colour=2, kind=b"IHDR", length=13):
    data = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return PNG_MAGIC + struct.pack(">I", length) + kind + data + \
        struct.pack(">I", zlib.crc32(kind + data))


def size(data, limit=10 ** 9):
    return declared_size(data, max_pixels=limit)


def damaged(data, words):
    with pytest.raises(SinGANError) as err:
        declared_size(data)
    message = str(err.value)
    assert message.startswith("cannot read the image as an image: its header is damaged (")
    assert message.endswith("); use an undamaged PNG, JPEG, BMP, GIF, WebP or TIFF file")
    assert "(" + words in message, message               # the reason, from its start
    return message


def refused_for_weight(data, width, height, wide):
    """declared_size refuses data at a limit one below its pixels times `wide`/8 (rounded up)
    and allows it at that count: the pixels count `weight` times."""
    weight = max(1, -(-wide // 8))
    assert size(data, width * height * weight) == (height, width)
    with pytest.raises(SinGANError):
        size(data, width * height * weight - 1)


@pytest.mark.parametrize("colour, channels", [(0, 1), (2, 3), (3, 4), (4, 2), (6, 4)])
def test_png_colour_types(colour, channels):
    assert size(png(70, 30, colour=colour)) == (30, 70)
    # 16-bit samples: channels x 2 bytes a pixel; above 8 bytes, more pixels' worth
    refused_for_weight(png(70, 30, 16, colour), 70, 30, channels * 2)


def test_png_damage():
    damaged(png(5, 5, kind=b"IDAT"), "its first chunk is not IHDR")
    damaged(png(5, 5, length=12), "its first chunk is not IHDR")
    damaged(png(5, 5, colour=5), "colour type 5")
    damaged(png(5, 5)[:20], "the file ends inside its header")


def jpeg(*segments):
    return b"\xff\xd8" + b"".join(segments)


def seg(marker, payload=b""):
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def sof(marker=0xC0, width=40, height=30, components=3, precision=8):
    return seg(marker, struct.pack(">BHHB", precision, height, width, components) + bytes(9))


@pytest.mark.parametrize("marker", [0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB,
                                    0xCD, 0xCE, 0xCF])
def test_jpeg_every_frame_marker_gives_the_size(marker):
    assert size(jpeg(seg(0xE0, b"JFIF\0" + bytes(9)), sof(marker, 41, 29))) == (29, 41)


def test_jpeg_segments_that_are_not_frames_are_skipped():
    # DHT (C4), JPG (C8) and DAC (CC) are no frames, though their codes sit among them: a
    # payload that would read as a huge size must be skipped
    fake = struct.pack(">BHHB", 8, 60000, 60000, 3)
    data = jpeg(seg(0xC4, fake), seg(0xC8, fake), seg(0xCC, fake), seg(0xFE, b"comment"),
                sof(0xC0, 41, 29))
    assert size(data, 41 * 29) == (29, 41)


def test_jpeg_fill_bytes_and_markers_without_a_length():
    data = b"\xff\xd8" + b"\xff\xff\xff\xd0" + b"\xff\x01" + b"\xff\xd7" + b"\xff\xd8" + \
        b"\xff\xff" + sof(0xC2, 12, 34)[1:]
    assert size(data) == (34, 12)


def test_jpeg_twelve_bit_samples_weigh_two_bytes():
    refused_for_weight(jpeg(sof(0xC0, 40, 30, components=4, precision=12)), 40, 30, 8)
    refused_for_weight(jpeg(sof(0xC0, 40, 30, components=3, precision=8)), 40, 30, 3)
    with pytest.raises(SinGANError, match="5 channels"):
        size(jpeg(sof(0xC0, 40, 30, components=5, precision=12)))


def test_jpeg_damage():
    damaged(jpeg(b"\x00\xe0"), "a segment does not start with 0xFF")
    damaged(jpeg(seg(0xE0, b"x"), b"\xff\xda"), "no frame header before the image data")
    damaged(jpeg(b"\xff\xd9"), "no frame header before the image data")
    damaged(jpeg(b"\xff\xe0\x00\x01"), "a segment shorter than its length field")
    damaged(jpeg(seg(0xE0), seg(0xE1)), "the file ends inside its header")


def test_jpeg_with_too_many_segments_is_damaged():
    from singan.image_io import MAX_HEADER_STEPS
    assert MAX_HEADER_STEPS == 4096
    # the start-of-image marker is the first of the 4096 steps
    many = jpeg(*[seg(0xE1)] * 4095, sof(0xC0, 10, 10))
    damaged(many, "too many segments before the frame header")
    assert size(jpeg(*[seg(0xE1)] * 4094, sof(0xC0, 10, 10))) == (10, 10)


def bmp(width, height, header=40, core=False):
    info = struct.pack("<HHHH", width, height, 1, 24) if core else \
        struct.pack("<iiHH", width, height, 1, 24)
    return b"BM" + bytes(12) + struct.pack("<I", header) + info + bytes(24)


def test_bmp_headers_of_every_size_and_either_direction():
    assert size(bmp(40, 30)) == (30, 40)
    assert size(bmp(40, -30)) == (30, 40)                     # top-down rows
    assert size(bmp(-40, 30)) == (30, 40)
    assert size(bmp(40, 30, header=16)) == (30, 40)
    assert size(bmp(40, 30, header=124)) == (30, 40)
    assert size(bmp(40, 30, header=12, core=True)) == (30, 40)   # OS/2 1.x
    assert size(bmp(40000, 3, header=12, core=True)) == (3, 40000)   # unsigned 16 bits
    refused_for_weight(bmp(40, 30), 40, 30, 4)                  # decoded as RGBA, 1 byte each


def test_bmp_damage():
    damaged(bmp(4, 4, header=15), "an information header of 15 bytes")
    damaged(b"BM" + bytes(10), "the file ends inside its header")


def gif(width, height, flags=0, blocks=b""):
    table = bytes(3 << ((flags & 7) + 1)) if flags & 0x80 else b""
    return b"GIF89a" + struct.pack("<HHBBB", width, height, flags, 0, 0) + table + blocks


def frame(left=0, top=0, w=10, h=10):
    return b"," + struct.pack("<HHHHB", left, top, w, h, 0)


def test_gif_screen_and_first_frame():
    assert size(gif(50, 40, blocks=frame(0, 0, 50, 40))) == (40, 50)
    # a first frame reaching past the logical screen: the larger of both
    assert size(gif(50, 40, blocks=frame(30, 35, 30, 10))) == (45, 60)
    assert size(b"GIF87a" + gif(8, 9, blocks=frame(0, 0, 8, 9))[6:]) == (9, 8)


@pytest.mark.parametrize("flags", [0x80, 0x81, 0x87, 0x07])
def test_gif_colour_tables_are_skipped(flags):
    assert size(gif(50, 40, flags, frame(1, 2, 3, 4))) == (40, 50)


def test_gif_extensions_and_their_sub_blocks_are_skipped():
    ext = b"!\xf9" + b"\x04" + bytes(4) + b"\x03abc" + b"\x00"
    comment = b"!\xfe" + b"\xff" + bytes(255) + b"\x00"
    assert size(gif(20, 10, blocks=ext + comment + frame(0, 0, 20, 10))) == (10, 20)
    refused_for_weight(gif(20, 10, blocks=frame(0, 0, 20, 10)), 20, 10, 4)


def test_gif_damage():
    damaged(gif(20, 10, blocks=b";"), "no frame before the end")
    long_ext = b"!\xfe" + b"\x01x" * 4096 + b"\x00"
    damaged(gif(20, 10, blocks=long_ext + frame()), "an extension too long")
    many = (b"!\xfe\x00") * 4096
    damaged(gif(20, 10, blocks=many + frame()), "too many extensions before the first frame")
    fits = b"!\xfe" + b"\x01x" * 4095 + b"\x00"
    assert size(gif(20, 10, blocks=fits + frame(0, 0, 20, 10))) == (10, 20)


def webp(chunk):
    return b"RIFF" + struct.pack("<I", len(chunk) + 4) + b"WEBP" + chunk


def test_webp_extended_lossless_and_lossy():
    for w, h in ((70_001, 3), (3, 70_001)):                  # 24 bits each in VP8X
        vp8x = b"VP8X" + struct.pack("<I", 10) + bytes(4) + (w - 1).to_bytes(3, "little") + \
            (h - 1).to_bytes(3, "little")
        assert size(webp(vp8x)) == (h, w)
    bits = (1234 - 1) | (567 - 1) << 14 | 0b1111 << 28
    vp8l = b"VP8L" + struct.pack("<I", 5) + struct.pack("<BI", 0x2F, bits)
    assert size(webp(vp8l)) == (567, 1234)
    vp8 = b"VP8 " + struct.pack("<I", 10) + bytes(3) + b"\x9d\x01\x2a" + \
        struct.pack("<HH", 0xC000 | 640, 0x4000 | 480)          # 2 scaling bits each
    assert size(webp(vp8)) == (480, 640)
    refused_for_weight(webp(vp8), 640, 480, 4)


def test_webp_damage():
    damaged(webp(b"VP8L" + struct.pack("<I", 5) + struct.pack("<BI", 0x2E, 0)),
            "a lossless stream without its signature")
    damaged(webp(b"VP8 " + struct.pack("<I", 10) + bytes(3) + b"\x9d\x01\x2b" + bytes(4)),
            "a lossy frame without its start code")
    damaged(webp(b"ALPH" + struct.pack("<I", 0)), "a first chunk b'ALPH'")


def tiff(entries, order="<", big=False, extra=b"", first=None):
    """A TIFF (or BigTIFF) whose first directory holds `entries` (tag, type, count, value
    bytes or int), right after the header; `extra` after the directory."""
    mark = b"II" if order == "<" else b"MM"
    inline = 8 if big else 4
    if big:
        head = mark + struct.pack(order + "HHHQ", 43, 8, 0, 16 if first is None else first)
        count = struct.pack(order + "Q", len(entries))
    else:
        head = mark + struct.pack(order + "HI", 42, 8 if first is None else first)
        count = struct.pack(order + "H", len(entries))
    body = b""
    for tag, kind, n, value in entries:
        if isinstance(value, int):
            fmt = {3: "H", 4: "I", 16: "Q"}[kind]
            value = struct.pack(order + fmt, value)
        body += struct.pack(order + ("HHQ" if big else "HHI"), tag, kind, n) + \
            value.ljust(inline, b"\0")
    return head + count + body + extra


def test_tiff_little_big_endian_and_bigtiff():
    entries = [(256, 4, 1, 300), (257, 3, 1, 200), (277, 3, 1, 3), (258, 3, 1, 8)]
    assert size(tiff(entries)) == (200, 300)
    assert size(tiff(entries, ">")) == (200, 300)
    big = [(256, 16, 1, 300), (257, 4, 1, 200)]
    assert size(tiff(big, big=True)) == (200, 300)
    assert size(tiff(big, ">", big=True)) == (200, 300)


def test_tiff_bits_and_samples_weigh_the_pixels():
    four_by_32 = [(256, 3, 1, 100), (257, 3, 1, 50), (277, 3, 1, 4), (258, 3, 1, 32)]
    refused_for_weight(tiff(four_by_32), 100, 50, 16)          # 4 x 4 bytes: two pixels' worth
    twelve = [(256, 3, 1, 100), (257, 3, 1, 50), (277, 3, 1, 4), (258, 3, 1, 12)]
    refused_for_weight(tiff(twelve), 100, 50, 8)               # 12 bits: 2 bytes
    one_bit = [(256, 3, 1, 100), (257, 3, 1, 50), (258, 3, 1, 1)]
    refused_for_weight(tiff(one_bit), 100, 50, 1)
    five = [(256, 3, 1, 10), (257, 3, 1, 10), (277, 3, 1, 5)]
    with pytest.raises(SinGANError) as err:
        size(tiff(five))
    assert str(err.value) == ("the image: not a single still image (5 channels); save it as "
                              "an RGB PNG or JPEG")


def test_tiff_several_bits_per_sample_are_read_where_they_point():
    # three SHORTs (6 bytes) do not fit in the 4-byte value: it holds their offset
    offset = 8 + 2 + 4 * 12
    entries = [(256, 3, 1, 100), (257, 3, 1, 50), (277, 3, 1, 4),
               (258, 3, 4, struct.pack("<I", offset))]
    data = tiff(entries, extra=struct.pack("<HHHH", 32, 32, 32, 32))
    refused_for_weight(data, 100, 50, 16)
    big_offset = 16 + 8 + 4 * 20
    big = tiff([(256, 4, 1, 100), (257, 4, 1, 50), (277, 3, 1, 4),
                (258, 3, 5, struct.pack("<Q", big_offset))], big=True,
               extra=struct.pack("<HHHHH", 32, 32, 32, 32, 32))
    refused_for_weight(big, 100, 50, 16)


def test_tiff_tags_of_other_types_or_counts_are_ignored():
    entries = [(256, 3, 1, 100), (257, 3, 1, 50), (258, 5, 1, struct.pack("<I", 64)),
               (277, 3, 0, 9),
               (999, 3, 1, 7)]
    assert size(tiff(entries), 100 * 50) == (50, 100)


def test_tiff_damage():
    damaged(tiff([(256, 3, 1, 10)]), "its first page has no width or height")
    damaged(tiff([(257, 3, 1, 10)]), "its first page has no width or height")
    damaged(tiff([(256, 3, 1, 10), (257, 3, 1, 10), (32997, 3, 1, 5)]), "a volume 5 images deep")
    assert size(tiff([(256, 3, 1, 10), (257, 3, 1, 10), (32997, 3, 1, 1)])) == (10, 10)
    damaged(b"II*\0" + struct.pack("<IH", 8, 4097), "a directory of 4097 entries")
    damaged(tiff([(256, 3, 1, 10)], big=True, first=2 ** 40),
            f"an offset ({2 ** 40}) outside any file")
    damaged(b"II+\0" + struct.pack("<HHQ", 4, 0, 16), "a BigTIFF header with offsets of another")
    damaged(b"II+\0" + struct.pack("<HHQ", 8, 1, 16), "a BigTIFF header with offsets of another")


def test_a_header_offset_just_inside_the_limit_is_only_a_short_file():
    damaged(tiff([(256, 3, 1, 10)], big=True, first=2 ** 40 - 1),
            "the file ends inside its header")



# The header's fields are unsigned where the formats' specifications say so (PNG's 4-byte
# width, GIF's and TIFF's 2-byte fields, TIFF's offsets and counts, BMP's header size): read
# signed, a huge declared size would turn negative and slip under the limit, and an offset
# would point before the file's start.

def test_a_png_of_2_to_the_31_pixels_wide_is_refused_not_read_as_negative():
    with pytest.raises(SinGANError) as err:
        size(png(2 ** 31, 1))
    assert "declares 2147483648 x 1 px" in str(err.value)


def test_a_gif_screen_or_first_frame_of_65535_pixels_is_counted_as_such():
    with pytest.raises(SinGANError, match="declares 65535 x 65535 px"):
        size(gif(65535, 65535, blocks=frame(0, 0, 1, 1)))
    # a first frame 65535 px wide on a 50 x 40 screen: the frame decides the width
    with pytest.raises(SinGANError, match="declares 65535 x 40 px"):
        size(gif(50, 40, blocks=frame(0, 0, 65535, 40)), 10 ** 6)


def test_a_bmp_header_size_is_unsigned():
    # 2^31 + 40 is no negative size: an information header of 16 bytes or more, as usual
    assert size(bmp(40, 30, header=2 ** 31 + 40)) == (30, 40)


def test_tiff_offsets_and_counts_are_unsigned():
    # a first directory at 2^32 - 16: past the end of this short file, not 16 bytes before it
    damaged(tiff([], first=2 ** 32 - 16), "the file ends inside its header")
    damaged(tiff([], big=True, first=2 ** 63 + 16), f"an offset ({2 ** 63 + 16}) outside any")
    # directory counts of 65535 (classic) and 2^63 + 1 (BigTIFF) entries
    damaged(b"II*\0" + struct.pack("<IH", 8, 65535), "a directory of 65535 entries")
    damaged(b"II+\0" + struct.pack("<HHQQ", 8, 0, 16, 2 ** 63 + 1),
            f"a directory of {2 ** 63 + 1} entries")
    # the bits per sample of four samples, stored at an offset of 2^32 - 16 (classic) and
    # 2^63 + 16 (BigTIFF: the 8-byte value of an entry)
    far = [(256, 3, 1, 10), (257, 3, 1, 10), (258, 3, 4, struct.pack("<I", 2 ** 32 - 16))]
    damaged(tiff(far), "the file ends inside its header")
    far_big = [(256, 3, 1, 10), (257, 3, 1, 10), (258, 3, 8, struct.pack("<Q", 2 ** 63 + 16))]
    damaged(tiff(far_big, big=True), f"an offset ({2 ** 63 + 16}) outside any file")


def test_a_bigtiff_volume_tag_above_32767_is_read():
    # ImageDepth is tag 32997: a 16-bit field read signed would make it -32539 and miss it
    deep = [(256, 3, 1, 10), (257, 3, 1, 10), (32997, 3, 1, 5)]
    damaged(tiff(deep, big=True), "a volume 5 images deep")


def test_a_tiff_directory_of_exactly_the_limits_entries_is_read():
    from singan.image_io import MAX_HEADER_STEPS
    filler = [(999, 3, 1, 0)] * (MAX_HEADER_STEPS - 2)
    assert size(tiff(filler + [(256, 3, 1, 12), (257, 3, 1, 7)])) == (7, 12)


@pytest.mark.parametrize("entries, bytes_a_pixel", [
    ([(258, 3, 1, 64)], 8),                      # no SamplesPerPixel: one sample of 8 bytes
    ([(277, 3, 1, 4), (258, 3, 1, 17)], 12),      # 17 bits take 3 bytes: 4 x 3
    ([(277, 3, 1, 3), (258, 3, 1, 32)], 12),      # 3 x 4 bytes: 1.5 pixels' worth, rounded up
    ([(277, 3, 1, 3), (258, 3, 1, 24)], 9),       # 3 x 3 bytes: just over one pixel's worth
])
def test_tiff_samples_weigh_whole_eight_byte_pixels_rounded_up(entries, bytes_a_pixel):
    data = tiff([(256, 3, 1, 100), (257, 3, 1, 50)] + entries)
    refused_for_weight(data, 100, 50, bytes_a_pixel)


@pytest.mark.parametrize("kind, data", [
    ("JPEG", jpeg(sof(0xC0, 0, 30))),
    ("BMP", bmp(0, 30)),
    ("WebP", webp(b"VP8 " + struct.pack("<I", 10) + bytes(3) + b"\x9d\x01\x2a" +
                  struct.pack("<HH", 0, 30))),
    ("TIFF", tiff([(256, 3, 1, 0), (257, 3, 1, 30)])),
])
def test_an_empty_image_names_its_format(kind, data):
    with pytest.raises(SinGANError) as err:
        declared_size(data, name="x")
    assert str(err.value) == (f"x: its {kind} header declares an empty image (0 x 30 px); use "
                              "another file")


def test_the_megapixels_are_rounded_to_the_nearest():
    # 3.5 and 1.5 megapixels: 4 and 2 (a divisor a millionth off would give 3 and 1)
    with pytest.raises(SinGANError) as err:
        declared_size(png(2000, 1750), max_pixels=1_500_000, name="x.png")
    assert "(4 megapixels), more than the 2 megapixels" in str(err.value)

# ---- declared_size's other answers ---------------------------------------------------------------

def test_not_an_image_format():
    for data in (b"hello world, not an image", b"", b"RIFF\0\0\0\0AVI LIST", b"II\x2a"):
        with pytest.raises(SinGANError) as err:
            declared_size(data)
        assert str(err.value) == ("cannot read the image as an image: it is not a PNG, JPEG, "
                                  "BMP, GIF, WebP or TIFF file (or it is damaged or empty)")


def test_an_empty_image_is_refused():
    with pytest.raises(SinGANError) as err:
        declared_size(png(0, 5), name="x.png")
    assert str(err.value) == ("x.png: its PNG header declares an empty image (0 x 5 px); use "
                              "another file")
    with pytest.raises(SinGANError, match=r"its GIF header declares an empty image \(7 x 0 px\)"):
        declared_size(gif(7, 0, blocks=frame(0, 0, 7, 0)))


def test_the_limit_message_gives_the_megapixels():
    with pytest.raises(SinGANError) as err:
        declared_size(png(3000, 2000), max_pixels=5_000_000, name="big.png")
    assert str(err.value) == ("big.png declares 3000 x 2000 px (6 megapixels), more than the 5 "
                              "megapixels an image may have here; downscale it first")
    deep = tiff([(256, 3, 1, 3000), (257, 3, 1, 2000), (277, 3, 1, 4), (258, 3, 1, 32)])
    with pytest.raises(SinGANError) as err:
        declared_size(deep, max_pixels=10_000_000, name="deep.tif")
    assert str(err.value) == ("deep.tif declares 3000 x 2000 px (6 megapixels of 16 bytes), "
                              "more than the 10 megapixels an image may have here; downscale "
                              "it first")
    assert declared_size(png(3000, 2000), max_pixels=6_000_000) == (2000, 3000)


def test_files_are_named_in_the_errors(tmp_path):
    with pytest.raises(SinGANError) as err:
        declared_size(tmp_path / "none.png")
    assert str(err.value) == f"image not found: {tmp_path / 'none.png'}"
    with pytest.raises(SinGANError) as err:
        declared_size(tmp_path)
    assert str(err.value) == f"{tmp_path} is a folder, not an image file"
    (tmp_path / "x.png").write_bytes(png(4, 3))
    assert declared_size(tmp_path / "x.png") == (3, 4)
    assert declared_size(str(tmp_path / "x.png")) == (3, 4)


def test_an_unreadable_file_says_why(tmp_path, monkeypatch):
    import builtins
    import errno
    real_open = builtins.open

    def refusing(path, *args, **kwargs):
        if str(path).endswith("locked.png"):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(path, *args, **kwargs)
    monkeypatch.setattr(builtins, "open", refusing)
    with pytest.raises(SinGANError) as err:
        declared_size(tmp_path / "locked.png")
    assert str(err.value) == f"cannot read {tmp_path / 'locked.png'}: Permission denied"


def test_the_default_limit_is_the_library_wide_one(monkeypatch):
    from singan import image_io
    asked = []
    monkeypatch.setattr(image_io, "image_pixel_limit", lambda most: asked.append(most) or most)
    declared_size(png(4, 3))
    declared_size(png(4, 3), max_pixels=99)
    assert asked == [250_000_000, 99]


# ---- reading, converting and writing files -------------------------------------------------------

import errno                                                # noqa: E402
import os                                                   # noqa: E402

import imageio.v3 as iio                                    # noqa: E402

from singan import image_io                                 # noqa: E402
from singan.image_io import (atomic_write_bytes, grid_zoom, read_image, save_grid,  # noqa: E402
                             save_image, write_error)


def test_read_image_gives_the_files_levels(tmp_path):
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 14
    iio.imwrite(tmp_path / "x.png", pixels)
    x = read_image(tmp_path / "x.png")
    assert x.shape == (1, 3, 2, 3) and x.is_contiguous() and x.device.type == "cpu"
    assert _levels(x)[0].permute(1, 2, 0).numpy().tolist() == pixels.tolist()
    assert read_image(str(tmp_path / "x.png"), device="meta").device.type == "meta"


def test_read_image_checks_the_declared_size_first(tmp_path):
    iio.imwrite(tmp_path / "x.png", np.zeros((20, 30, 3), np.uint8))
    with pytest.raises(SinGANError, match="declares 30 x 20 px"):
        read_image(tmp_path / "x.png", max_pixels=599)
    assert read_image(tmp_path / "x.png", max_pixels=600).shape == (1, 3, 20, 30)


def test_a_file_no_decoder_reads_is_one_line(tmp_path):
    (tmp_path / "x.png").write_bytes(png(4, 4) + b"garbage, no image data")
    with pytest.raises(SinGANError) as err:
        read_image(tmp_path / "x.png")
    message = str(err.value)
    assert message.startswith(f"cannot read {tmp_path / 'x.png'} as an image (")
    reason = message.split(" as an image (")[1].split(":")[0]
    assert reason.isidentifier() and reason != "NoneType"      # the decoder's exception
    assert message.endswith(": it is damaged or not an image); use a PNG, JPEG, BMP, TIFF or "
                            "WebP file")


def test_a_decompression_bomb_from_the_decoder_is_named(tmp_path, monkeypatch):
    class DecompressionBombError(Exception):
        pass

    def bomb(path):
        raise DecompressionBombError("too many pixels")
    monkeypatch.setattr(image_io, "_decode", bomb)
    (tmp_path / "x.png").write_bytes(png(4, 4))
    with pytest.raises(SinGANError) as err:
        read_image(tmp_path / "x.png")
    assert str(err.value) == (f"{tmp_path / 'x.png'} has too many pixels to decode safely (too "
                              "many pixels); downscale it first")


def test_to_uint8_takes_one_image_or_a_batch():
    one = torch.full((3, 2, 4), 1.0)
    assert to_uint8(one).shape == (2, 4, 3) and (to_uint8(one) == 255).all()
    batch = torch.stack([torch.full((3, 2, 4), -1.0), torch.full((3, 2, 4), 1.0)])
    out = to_uint8(batch)
    assert out.shape == (2, 2, 4, 3) and out[0].max() == 0 and out[1].min() == 255
    assert to_uint8(torch.full((1, 3, 1, 1), 0.0, requires_grad=True)).tolist() == [[[128, 128,
                                                                                      128]]]


def test_the_default_file_mode_is_what_the_umask_leaves():
    old = os.umask(0o027)
    try:
        assert image_io._default_file_mode() == 0o640
        assert os.umask(0o002) == 0o027                      # the umask was put back
        assert image_io._default_file_mode() == 0o664
    finally:
        os.umask(old)


@pytest.mark.parametrize("code, words", [
    (errno.ENOSPC, "the disk is full (or over quota); free some space and run the command "
                   "again: what was saved before is intact"),
    (errno.EDQUOT, "the disk is full (or over quota)"),
    (errno.EROFS, "the folder is not writable (read-only or no permission); choose another "
                  "folder or fix its permissions"),
    (errno.EACCES, "the folder is not writable"),
    (errno.EPERM, "the folder is not writable"),
    (errno.EIO, "Input/output error"),
])
def test_write_errors_say_what_happened(code, words):
    message = str(write_error("out/x.png", OSError(code, os.strerror(code))))
    assert message.startswith("cannot write out/x.png: ") and words in message


def test_a_write_error_without_a_reason_names_its_type():
    assert str(write_error("x", BlockingIOError())) == "cannot write x: BlockingIOError"


def test_atomic_write_makes_folders_and_gives_the_usual_mode(tmp_path):
    atomic_write_bytes(tmp_path / "a" / "b" / "x.bin", b"data")
    path = tmp_path / "a" / "b" / "x.bin"
    assert path.read_bytes() == b"data" and os.listdir(path.parent) == ["x.bin"]
    assert path.stat().st_mode & 0o777 == image_io._FILE_MODE


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    (tmp_path / "x.bin").write_bytes(b"old")

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(image_io.os, "replace", full)
    with pytest.raises(SinGANError, match="the disk is full"):
        atomic_write_bytes(tmp_path / "x.bin", b"new")
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["x.bin"] and (tmp_path / "x.bin").read_bytes() == b"old"


def test_durable_writes_sync_the_file_and_its_folder(tmp_path, monkeypatch):
    synced = []
    real_fsync = image_io.os.fsync
    monkeypatch.setattr(image_io.os, "fsync", lambda fd: (synced.append(os.readlink(
        f"/proc/self/fd/{fd}")), real_fsync(fd)))
    atomic_write_bytes(tmp_path / "x.bin", b"1")
    assert synced == []
    atomic_write_bytes(tmp_path / "y.bin", b"2", durable=True)
    assert len(synced) == 2 and synced[1] == str(tmp_path)
    assert synced[0].startswith(str(tmp_path / ".y.bin."))


def test_syncing_a_folder_survives_systems_that_refuse(tmp_path, monkeypatch):
    closed = []
    real_close = image_io.os.close
    monkeypatch.setattr(image_io.os, "close", lambda fd: (closed.append(fd), real_close(fd)))

    def refuse(fd):
        raise OSError(errno.EINVAL, "Invalid argument")
    monkeypatch.setattr(image_io.os, "fsync", refuse)
    image_io._sync_folder(tmp_path)
    assert len(closed) == 1
    image_io._sync_folder(tmp_path / "missing")                 # cannot open: nothing to do
    assert len(closed) == 1


def test_save_image_writes_the_rounded_levels(tmp_path):
    x = torch.tensor([-1.0, 0.0, 1.0]).view(1, 1, 1, 3).expand(1, 3, 1, 3)
    save_image(tmp_path / "x.png", x)
    back = iio.imread(tmp_path / "x.png")
    assert back.shape == (1, 3, 3) and back[0, :, 0].tolist() == [0, 128, 255]


@pytest.mark.parametrize("height, zoom", [(1, 256), (43, 6), (128, 2), (255, 2), (256, 1),
                                          (300, 1)])
def test_grid_zoom_is_the_smallest_whole_factor_reaching_the_height(height, zoom):
    assert grid_zoom(height) == zoom
    assert grid_zoom(10, min_height=25) == 3 and grid_zoom(10, min_height=30) == 3


def test_a_grid_places_each_image_in_its_cell_on_white(tmp_path):
    black = torch.full((1, 3, 2, 3), -1.0)
    grey = torch.zeros(1, 3, 1, 2)
    save_grid(tmp_path / "g.png", [black, grey, black], columns=2, gap=1, min_height=1)
    g = iio.imread(tmp_path / "g.png")
    # cells of 2 x 3 with 1 px gaps: 2 rows, 2 columns -> (2 + 1 + 2) x (3 + 1 + 3)
    assert g.shape == (5, 7, 3)
    assert (g[0:2, 0:3] == 0).all() and (g[3:5, 0:3] == 0).all()          # the black ones
    assert (g[0:1, 4:6] == 128).all()                                     # the grey one
    white = np.ones((5, 7), bool)
    white[0:2, 0:3] = white[3:5, 0:3] = white[0:1, 4:6] = False
    assert (g[white] == 255).all()


def test_a_grid_enlarges_small_rows_by_whole_blocks(tmp_path):
    x = torch.tensor([-1.0, 1.0]).view(1, 1, 1, 2).expand(1, 3, 1, 2)
    save_grid(tmp_path / "g.png", [x], min_height=3)
    g = iio.imread(tmp_path / "g.png")
    assert g.shape == (3, 6, 3)
    assert (g[:, :3] == 0).all() and (g[:, 3:] == 255).all()
    save_grid(tmp_path / "two.png", [x], min_height=2)       # a zoom of exactly 2
    assert iio.imread(tmp_path / "two.png").shape == (2, 4, 3)
    save_grid(tmp_path / "h.png", [x, x])                    # one row, default gap 4
    h = iio.imread(tmp_path / "h.png")
    assert h.shape == (256, 2 * 512 + 4, 3)


def test_a_directory_at_offset_zero_reads_the_header_as_its_count():
    # offset 0 is inside the file: the directory's entry count is then "II" = 0x4949 = 18761
    damaged(tiff([(256, 3, 1, 10)], first=0), "a directory of 18761 entries")


def test_zero_samples_a_pixel_is_no_image():
    with pytest.raises(SinGANError, match=r"not a single still image \(0 channels\)"):
        size(tiff([(256, 3, 1, 10), (257, 3, 1, 10), (277, 3, 1, 0)]))


def test_an_os_error_without_a_reason_is_quoted(tmp_path, monkeypatch):
    import builtins
    real_open = builtins.open

    def odd(path, *args, **kwargs):
        if str(path).endswith("odd.png"):
            raise OSError("the disk went away")
        return real_open(path, *args, **kwargs)
    monkeypatch.setattr(builtins, "open", odd)
    with pytest.raises(SinGANError) as err:
        declared_size(tmp_path / "odd.png")
    assert str(err.value) == f"cannot read {tmp_path / 'odd.png'}: the disk went away"


def test_the_fallback_reader_takes_the_first_frame_quietly(tmp_path, monkeypatch):
    """_imread_any_plugin (formats Pillow cannot open): the first frame, as read_image
    promises, and imageio's plugin search's DeprecationWarning (legacy DICOM) not shown,
    while a decoder's warning about the file itself (a UserWarning) reaches the user."""
    import warnings
    frames = np.stack([np.full((4, 5, 3), 10, np.uint8), np.full((4, 5, 3), 200, np.uint8)])
    iio.imwrite(tmp_path / "two.gif", frames, loop=0)
    first = image_io._imread_any_plugin(tmp_path / "two.gif")
    assert first.shape[:2] == (4, 5) and abs(int(first[..., 0].mean()) - 10) <= 2
    real = iio.imread

    def noisy(*args, **kwargs):
        warnings.warn("the legacy DICOM plugin goes away", DeprecationWarning)
        warnings.warn("two.gif: a damaged block was skipped", UserWarning)
        return real(*args, **kwargs)
    monkeypatch.setattr(image_io.iio, "imread", noisy)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        image_io._imread_any_plugin(tmp_path / "two.gif")
        warnings.warn("other warnings still show", UserWarning)
    assert [(type(w.message), str(w.message)) for w in seen] == [
        (UserWarning, "two.gif: a damaged block was skipped"),
        (UserWarning, "other warnings still show")]


def test_the_temporary_is_named_as_a_kill_would_leave_it(tmp_path, monkeypatch):
    """A kill between writing and renaming leaves '.<name>.<random>.tmp' beside the target,
    which nothing reads and guards.remove_temporaries sweeps."""
    made = temporaries_made(monkeypatch, image_io)
    atomic_write_bytes(tmp_path / "x.bin", b"1")
    (temp,) = made
    assert temp.parent == tmp_path and temp.name.startswith(".x.bin.")
    assert temp.name.endswith(".tmp") and not temp.exists()


# ---- decoding: what the file means, not only its pixels -----------------------------------------

def test_cmyk_is_converted_to_rgb(tmp_path):
    from PIL import Image
    # CMYK (0, 255, 255, 0) is pure red; (0, 0, 0, 255) black (Pillow's plain conversion)
    img = Image.new("CMYK", (3, 2), (0, 255, 255, 0))
    img.putpixel((2, 1), (0, 0, 0, 255))
    img.save(tmp_path / "c.tif")
    x = read_image(tmp_path / "c.tif")
    assert x.shape == (1, 3, 2, 3)
    assert _levels(x)[0, :, 0, 0].tolist() == [255, 0, 0]
    assert _levels(x)[0, :, 1, 2].tolist() == [0, 0, 0]


def test_the_exif_orientation_is_applied(tmp_path):
    from PIL import Image
    img = Image.new("RGB", (4, 2), (0, 0, 0))                 # 2 rows of 4, one white corner
    img.putpixel((0, 0), (255, 255, 255))
    exif = Image.Exif()
    exif[0x0112] = 6                                          # "rotate 90 degrees clockwise"
    img.save(tmp_path / "r.png", exif=exif.tobytes())
    x = read_image(tmp_path / "r.png")
    assert x.shape == (1, 3, 4, 2)                            # upright: 4 rows of 2
    assert _levels(x)[0, 0, 0, 1] == 255 and _levels(x)[0, 0, 0, 0] == 0   # corner now top right


def test_an_animation_reads_its_first_frame(tmp_path):
    frames = np.stack([np.full((4, 5, 3), 10, np.uint8), np.full((4, 5, 3), 200, np.uint8)])
    iio.imwrite(tmp_path / "a.gif", frames, loop=0)
    x = read_image(tmp_path / "a.gif")
    assert x.shape == (1, 3, 4, 5) and abs(int(_levels(x).float().mean()) - 10) <= 2


def test_a_tiff_reads_its_first_page_at_16_bits(tmp_path):
    import tifffile
    pages = np.zeros((2, 3, 4, 3), np.uint16)
    pages[0, 0, 0] = 65535
    pages[1] = 30000
    with tifffile.TiffWriter(tmp_path / "p.TIF") as tif:          # upper case suffix too
        for page in pages:
            tif.write(page, photometric="rgb")
    x = read_image(tmp_path / "p.TIF")
    assert x.shape == (1, 3, 3, 4)
    assert x[0, :, 0, 0].tolist() == [1.0, 1.0, 1.0] and x[0, 0, 1, 1] == -1.0


def test_a_failed_write_names_its_file(tmp_path, monkeypatch):
    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(image_io.os, "replace", full)
    with pytest.raises(SinGANError) as err:
        atomic_write_bytes(tmp_path / "x.bin", b"new")
    assert str(err.value).startswith(f"cannot write {tmp_path / 'x.bin'}: the disk is full")
