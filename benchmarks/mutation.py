"""Mutation testing of the core modules (issue 41): a measure of the suite, not part of CI.

For each module, mutmut (3.8) makes every small change it knows to the module's functions (an
operator swapped, a constant moved by one, a condition negated, an argument dropped, ...) and
runs the fast tests that cover the module against each changed version: a mutant is killed when
a test fails. The score is the share killed (or timed out, or stopping pytest with its own
KeyboardInterrupt: either fails the run), out of
all mutants less those listed in EQUIVALENT below (changes that cannot alter what the module
does; the README's "Tests" section says why for each). A surviving mutant not in that list is
a blind spot of the tests, printed with its diff.

    python benchmarks/mutation.py                  # every module, one after the other
    python benchmarks/mutation.py imresize losses  # some of them
    python benchmarks/mutation.py guards --keep    # keep the copy (its path is printed) ...
    python benchmarks/mutation.py guards --resume /tmp/singan-mutation-guards-XXXX
                                                   # ... and rerun only its survivors
    python benchmarks/mutation.py --list           # the modules and their tests

Each module runs in a copy of the checkout under $TMPDIR (mutmut writes a mutants/ folder
beside the code), with one worker (--children). It is long (minutes per module on 2 cores): run it alone,
`flock /tmp/singan-heavy.lock python benchmarks/mutation.py MODULE`, one module at a time.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# module -> the fast tests that cover it (pytest arguments: files, node ids, -k)
MODULES = {
    "imresize": ["tests/test_imresize.py", "tests/test_pyramid.py"],
    "losses": ["tests/test_losses.py", "tests/test_penalty.py", "tests/test_train_step.py"],
    "penalty": ["tests/test_penalty.py"],
    "pyramid": ["tests/test_pyramid.py"],
    "checkpoint": ["tests/test_checkpoint.py", "tests/test_checkpoint_edges.py"],
    "guards": ["tests/test_guards.py"],
    "resources": ["tests/test_resources.py", "tests/test_resources_edges.py",
                  "-k", "not script and not fresh_process"],
    "image_io": ["tests/test_image_io.py", "tests/test_image_io_decode.py",
                 "tests/test_sampling.py", "tests/test_hostile.py",
                 "-k", "test_image_io or (test_sampling and not reference and not tiny) or "
                 "(test_hostile and (declared or bomb or limit_follows or animations_and_pages "
                 "or fuzzed_headers or header_reader))"],
    "progress": ["tests/test_progress.py", "-k", "not terminal_shows and not main_train and "
                 "not best_device and not tensorboard_gets and not events_carry"],
}

# where a module's file lies below singan/, when not at its top (SinGAN's own modules)
FILES = {"penalty": "methods/singan/penalty.py", "pyramid": "methods/singan/pyramid.py"}

# Mutants that cannot change what the module does, by name (mutmut's names, stable while the
# function's source is unchanged), with the reason; the README's "Tests" section lists them.
TOTAL_UNSHOWN = ("the run line's total (0, None, 1 or tqdm's default): its bar_format shows "
                 "the description alone, the same for any total")
KNOT_ZERO = ("cubic's pieces meet at |x| = 1 (both 0) and the outer one is 0 at |x| = 2: "
             "< for <= there changes no value")
ZERO_TAPS = ("a wider tap window (or one shifted by a tap): the taps it adds lie outside the "
             "kernel's support and weigh exactly 0")
NEVER_ZERO = ("the guard for a tap weight sum of 0: the taps nearest each output pixel (u >= "
              "0.5) lie inside the image, in the kernel's positive main lobe, which outweighs "
              "its negative lobes: the sum is never 0")
ORDER_ONLY = ("the order of the two dimensions' resizes: the two matrix products associate, so "
              "only float32 rounding changes (below the tests' 1e-5)")
PLAIN_NONE = ("training_peak(low_memory=None) for False: it only tests the flag's truth (and "
              "so does every trainer's step_bytes)")
WIDE_NEVER = ("a sample size of 1 or 2 bytes, or a channel count within 1-4, changed: at "
              "most 4 x 2 = 8 bytes a pixel, still one pixel's weight (only more than 8 bytes "
              "a pixel counts more)")
UNUSED_FIELDS = ("a header field read signed that is never used (BMP's planes and bits, "
                 "WebP's chunk size)")
CLIP_TWICE = ("one of _to_tensor's two saturations (np.clip to [0, 1] for floats, clamp_ to "
              "[-1, 1] after 2x - 1): each alone keeps every value in range")
MASK_IGNORED = ("an output mask of torch's _convolution_double_backward changed: it computes "
                "ggO and gW from the inputs it is given and does not read the mask (torch 2.14; "
                "checked by calling it with every mask)")
SELF_IS_RESULT = ("leaky_relu_backward's self_is_result flag (True, False or None): it only "
                  "enables a check of the slope's sign; the gradient is the same")
RELEASED = ("a reference released with '' instead of None: the tensor is freed the same way")
EXTRA_OUTPUT = ("cost only: convolution_backward also computes an output that is not used "
                "(the same values; more work and a short-lived tensor)")
NO_REUSE = ("cost only: a new tensor instead of writing into a spent one (out=): the same "
            "values, one more full-size temporary")
KEPT_LONGER = ("cost only: a tensor freed later (or not at all) than it could be: the same "
               "values, more memory; the fast tests check values, not the peak")
ZERO_SIGN = ("the +0.0 that turns a -0.0 of adj_x into +0.0 as autograd's engine does: at "
             "k = 0 adj_x is not used after it, and above it only an all-zero channel's "
             "adjoint could carry the sign into a value (BatchNorm's backward adds the "
             "channel's means to every element)")
SAME_BYTES = ("struct.pack('h', 42 or 43) for 'H': both give the same two bytes")
SIGNED_SAME = ("a field read signed whose every use gives the same answer: compared with a "
               "small positive number (BigTIFF's 8 and 0; PNG's chunk length 13), or masked to "
               "its low 14 bits (WebP's VP8 size)")
JPEG_SOI = ("0xD0 <= marker <= 0xD8 for <= 0xD7: 0xD8 is taken by the test before it")
YCBCR_NEVER = ("no file declared_size admits opens as YCbCr in Pillow: YCbCr TIFFs and JPEGs "
               "open as 'RGB'; only the IM format, which declared_size refuses, opens as YCbCr "
               "(Pillow 12.3)")
SEVENTEEN = ("the first 17 bytes instead of 16: every test reads at most the first 12")
EQUIVALENT = {
    "losses": {
        "singan.losses.x_penalty_of__mutmut_4":
            "grad.norm(None, dim=1): torch's default norm over one dimension is the 2-norm",
        "singan.losses.x_penalty_of__mutmut_6":
            "grad.norm(dim=1): torch's default norm over one dimension is the 2-norm",
        "singan.losses.x_penalty_point__mutmut_8":
            "a drawn as [1, 1, 1]: it broadcasts against [N, C, H, W] as [1, 1, 1, 1] does",
        "singan.losses.x_penalty_point__mutmut_9":
            "a drawn as [1, 1, 1]: it broadcasts against [N, C, H, W] as [1, 1, 1, 1] does",
        "singan.losses.x_penalty_point__mutmut_10":
            "a drawn as [1, 1, 1]: it broadcasts against [N, C, H, W] as [1, 1, 1, 1] does",
        "singan.losses.x_penalty_point__mutmut_11":
            "a drawn as [1, 1, 1]: it broadcasts against [N, C, H, W] as [1, 1, 1, 1] does",
    },
    "pyramid": {
        "singan.methods.singan.pyramid.x_plan_pyramid__mutmut_60":
            "max(2, width) for max(1, width) in the SR schedule: the width is at least "
            "min_size = 18 there (checked before)",
    },
    "checkpoint": {
        "singan.checkpoint.x__verified__mutmut_7":
            "a missing format_version taken as 1 instead of 0: both are below FORMAT_VERSION",
    },
    "guards": {
        "singan.guards.x_check_writable__mutmut_17":
            "the write probe's prefix in capitals: still a hidden '.<name>.*.tmp' temporary "
            "that remove_temporaries sweeps",
    },
    "imresize": {
        "singan.imresize.x_cubic__mutmut_17": KNOT_ZERO,
        "singan.imresize.x_cubic__mutmut_33": KNOT_ZERO,
        "singan.imresize.x_cubic__mutmut_34": KNOT_ZERO,
        "singan.imresize.x__make_weight_matrix__mutmut_7": ZERO_TAPS,
        "singan.imresize.x__make_weight_matrix__mutmut_9": ZERO_TAPS,
        "singan.imresize.x__make_weight_matrix__mutmut_37": ZERO_TAPS,
        "singan.imresize.x__make_weight_matrix__mutmut_38": ZERO_TAPS,
        "singan.imresize.x__make_weight_matrix__mutmut_55": NEVER_ZERO,
        "singan.imresize.x__make_weight_matrix__mutmut_57": NEVER_ZERO,
        "singan.imresize.x__make_weight_matrix__mutmut_58": NEVER_ZERO,
        "singan.imresize.x__make_weight_matrix__mutmut_73":
            "one more entry at the end of the mirror table: indices are taken modulo 2 L, so "
            "it is never read",
        "singan.imresize.x_resize_float__mutmut_25": ORDER_ONLY,
        "singan.imresize.x_resize_float__mutmut_27": ORDER_ONLY,
        "singan.imresize.xǁ_BoundedCacheǁget__mutmut_8":
            "ndarray.nbytes for every cached value: torch tensors have .nbytes too, the same "
            "number",
        "singan.imresize.xǁ_BoundedCacheǁget__mutmut_20":
            "ndarray.nbytes for every evicted value: torch tensors have .nbytes too, the same "
            "number",
        "singan.imresize.xǁ_BoundedCacheǁget__mutmut_15":
            "popitem(last=None): None is false, so the oldest entry goes, as with last=False",
    },
    "resources": {
        "singan.resources.x_choose_low_memory__mutmut_7": PLAIN_NONE,
        "singan.resources.x_graphs_fit__mutmut_7": PLAIN_NONE,
        "singan.resources.x_frames_bytes__mutmut_34":
            "frames / 2 for frames // 2: frames is 4 bytes times a count, always even",
        "singan.resources.x_free_memory__mutmut_5":
            "free's first value ('' for None): every branch below assigns free before it is read",
        "singan.resources.x_draw_bytes__mutmut_43":
            "activations >= DRAW_TILE_BYTES: when equal, activations is replaced by the same "
            "number",
        "singan.resources.x_training_peak__mutmut_12":
            "need >= worst: on a tie the later of two levels needing the same bytes is named; "
            "the bytes are the same and both are 'the worst level'",
    },
    "image_io": {
        "singan.image_io.x__default_file_mode__mutmut_3":
            "another umask set for an instant (0o023 for 0o022) to read the old one: only the "
            "old one is returned, and it is put back",
        "singan.image_io.x_atomic_write_bytes__mutmut_4":
            "tmp's first value ('' for None): os.path.exists('') is false, so a write that "
            "failed before its temporary existed removes nothing either way",
        "singan.image_io.x__bmp__mutmut_24": WIDE_NEVER,
        "singan.image_io.x__webp__mutmut_32": WIDE_NEVER,
        "singan.image_io.x__webp__mutmut_56": WIDE_NEVER,
        "singan.image_io.x__bmp__mutmut_18": UNUSED_FIELDS,
        "singan.image_io.x__webp__mutmut_4": UNUSED_FIELDS,
        "singan.image_io.x__webp__mutmut_39": "the lossless header read signed: Python's shifts and masks give the same 14-bit fields",
        "singan.image_io.x__to_tensor__mutmut_41": "booleans as float64 instead of uint8: 0 and 1 either way, then taken as [0, 1]",
        "singan.image_io.x__to_tensor__mutmut_64": CLIP_TWICE,
        "singan.image_io.x__to_tensor__mutmut_65": CLIP_TWICE,
        "singan.image_io.x__to_tensor__mutmut_70": CLIP_TWICE,
        "singan.image_io.x__to_tensor__mutmut_73": CLIP_TWICE,
        "singan.image_io.x__to_tensor__mutmut_74": CLIP_TWICE,
        "singan.image_io.x__to_tensor__mutmut_76": CLIP_TWICE,
        "singan.image_io.x__to_tensor__mutmut_82": CLIP_TWICE,
        "singan.image_io.x__to_tensor__mutmut_83": CLIP_TWICE,
        "singan.image_io.x_read_image__mutmut_27": "_to_tensor without the path: it names the path only for arrays that declared_size has refused before any decoding (more than 4 channels, an empty image)",
        "singan.image_io.x__png__mutmut_23": WIDE_NEVER,
        "singan.image_io.x__png__mutmut_25": WIDE_NEVER,
        "singan.image_io.x__png__mutmut_29": WIDE_NEVER,
        "singan.image_io.x__png__mutmut_34": WIDE_NEVER,
        "singan.image_io.x__png__mutmut_35": WIDE_NEVER,
        "singan.image_io.x__png__mutmut_37": WIDE_NEVER,
        "singan.image_io.x__png__mutmut_38": WIDE_NEVER,
        "singan.image_io.x__png__mutmut_39": WIDE_NEVER,
        "singan.image_io.x__jpeg__mutmut_49": WIDE_NEVER,
        "singan.image_io.x__jpeg__mutmut_50": WIDE_NEVER,
        "singan.image_io.x__jpeg__mutmut_52": WIDE_NEVER,
        "singan.image_io.x__jpeg__mutmut_53": WIDE_NEVER,
        "singan.image_io.x__jpeg__mutmut_54": WIDE_NEVER,
        "singan.image_io.x__gif__mutmut_37": WIDE_NEVER,
        "singan.image_io.x__webp__mutmut_78": WIDE_NEVER,
        "singan.image_io.x__tiff__mutmut_122": "at least 2 bytes a sample instead of 1: with at most 4 samples that is at most 8 bytes, one pixel's weight",
        "singan.image_io.x__tiff__mutmut_131": "a missing BitsPerSample taken as 2 bits instead of 1: both round up to one byte",
        "singan.image_io.x__png__mutmut_4": SIGNED_SAME,
        "singan.image_io.x__tiff__mutmut_5": SIGNED_SAME,
        "singan.image_io.x__webp__mutmut_72": SIGNED_SAME,
        "singan.image_io.x__jpeg__mutmut_27": JPEG_SOI,
        "singan.image_io.x__read_header__mutmut_5": SEVENTEEN,
        "singan.image_io.x__read_header__mutmut_79": SAME_BYTES,
        "singan.image_io.x__read_header__mutmut_87": SAME_BYTES,
        "singan.image_io.x__read_header__mutmut_109": SAME_BYTES,
        "singan.image_io.x_atomic_write_bytes__mutmut_40": "tmp reset to '' instead of None after the rename: os.path.exists('') is false, so nothing is removed either way",
        "singan.image_io.x__decode__mutmut_4": "immeta's index=None is index 0 in the pillow plugin except for GIF/APNG (Ellipsis: the frame just opened, the first), and GIF/APNG frames are never CMYK/YCbCr/LAB/HSV",
        "singan.image_io.x__decode__mutmut_7": "index omitted is index=None: the pillow plugin reads the first frame's mode as with index=0, as for mutant 4",
        "singan.image_io.x__decode__mutmut_14": "mode is only tested for membership in the colour-space tuple; None and '' are both outside it",
        "singan.image_io.x__decode__mutmut_18": YCBCR_NEVER,
        "singan.image_io.x__decode__mutmut_19": YCBCR_NEVER,
        "singan.image_io.x__decode__mutmut_20": YCBCR_NEVER,
        "singan.image_io.x__decode__mutmut_23": "no Pillow plugin opens any file as HSV",
        "singan.image_io.x__decode__mutmut_24": "no Pillow plugin opens any file as HSV",
        "singan.image_io.x__decode__mutmut_26": "the pillow plugin's index=None is 0 except for GIF/APNG, and the CMYK/LAB files that reach this branch (JPEG, TIFF) are neither; test_a_multi_page_cmyk_tiff_reads_its_first_page_as_rgb passes under it",
        "singan.image_io.x__decode__mutmut_31": "index omitted is index=None: the pillow plugin's default is the first frame for JPEG and TIFF (as mutant 26)",
        "singan.image_io.x__decode__mutmut_49": "with plugin=None imageio tries tifffile first for .tif/.tiff; a file tifffile cannot open goes on to pillow, which rejects page= (TypeError), and so to the same fallback",
        "singan.image_io.x__decode__mutmut_53": "plugin omitted is plugin=None (as mutant 49)",
        "singan.image_io.x__decode__mutmut_50": "imageio's tifffile plugin sets index=None to series 0 (TifffilePlugin.read), the same as index=0",
        "singan.image_io.x__decode__mutmut_54": "index omitted is index=None, which the tifffile plugin makes series 0 (as mutant 50)",
        "singan.image_io.x__tiff_orientation__mutmut_15":
            "orientation 1 left out of the accepted values: it then becomes 1 anyway",
        "singan.image_io.x__upright__mutmut_47": "np.rot90(pixels) for np.rot90(pixels, 1): k=1 is its default",
        "singan.image_io.x_save_grid__mutmut_11":
            "zoom >= 1 for zoom > 1: repeating each pixel once changes nothing",
    },
    "penalty": {
        "singan.methods.singan.penalty.x__conv_vjp__mutmut_4":
            "bias_sizes None for [out_channels]: convolution_backward sums the gradient over all but the channel dimension either way",
        "singan.methods.singan.penalty.x__input_gradients__mutmut_14":
            "one more slot in the list g: never read",
        "singan.methods.singan.penalty.x__input_gradients__mutmut_25":
            EXTRA_OUTPUT,
        "singan.methods.singan.penalty.x__input_gradients__mutmut_26":
            EXTRA_OUTPUT,
        "singan.methods.singan.penalty.x__input_gradients__mutmut_96":
            EXTRA_OUTPUT,
        "singan.methods.singan.penalty.x__input_gradients__mutmut_97":
            EXTRA_OUTPUT,
        "singan.methods.singan.penalty.x__input_gradients__mutmut_45":
            SELF_IS_RESULT,
        "singan.methods.singan.penalty.x__input_gradients__mutmut_53":
            SELF_IS_RESULT,
        "singan.methods.singan.penalty.x__input_gradients__mutmut_54":
            RELEASED,
        "singan.methods.singan.penalty.x__input_gradients__mutmut_56":
            RELEASED,
        "singan.methods.singan.penalty.x__input_gradients__mutmut_65":
            RELEASED,
        "singan.methods.singan.penalty.x__input_gradients__mutmut_57":
            KEPT_LONGER,
        "singan.methods.singan.penalty.x__norm_double_backward__mutmut_4":
            "M = numel / C (a float) for numel // C: C divides numel, and every use of M converts it to the same double",
        "singan.methods.singan.penalty.x__norm_double_backward__mutmut_59":
            NO_REUSE,
        "singan.methods.singan.penalty.x__norm_double_backward__mutmut_62":
            NO_REUSE,
        "singan.methods.singan.penalty.x__norm_double_backward__mutmut_73":
            NO_REUSE,
        "singan.methods.singan.penalty.x__norm_double_backward__mutmut_76":
            NO_REUSE,
        "singan.methods.singan.penalty.x__norm_double_backward__mutmut_94":
            NO_REUSE,
        "singan.methods.singan.penalty.x__norm_double_backward__mutmut_113":
            NO_REUSE,
        "singan.methods.singan.penalty.x__norm_double_backward__mutmut_83":
            "the scalar 1 made in the default dtype: 1.0 is exact in any float dtype, and a 0-dim tensor does not decide the product's dtype",
        "singan.methods.singan.penalty.x__norm_double_backward__mutmut_86":
            "the scalar 1 made in the default dtype: 1.0 is exact in any float dtype, and a 0-dim tensor does not decide the product's dtype",
        "singan.methods.singan.penalty.x__norm_double_backward__mutmut_84":
            "the scalar 1 made on the CPU: a 0-dim CPU tensor multiplies a tensor of any device, giving the same value",
        "singan.methods.singan.penalty.x__norm_double_backward__mutmut_87":
            "the scalar 1 made on the CPU: a 0-dim CPU tensor multiplies a tensor of any device, giving the same value",
        "singan.methods.singan.penalty.x_critic_input_gradient__mutmut_26":
            "keep=None for keep=False: only its truth is read",
        "singan.methods.singan.penalty.x_critic_input_gradient__mutmut_33":
            KEPT_LONGER,
        "singan.methods.singan.penalty.x_penalty_gradients__mutmut_104":
            MASK_IGNORED,
        "singan.methods.singan.penalty.x_penalty_gradients__mutmut_105":
            MASK_IGNORED,
        "singan.methods.singan.penalty.x_penalty_gradients__mutmut_106":
            MASK_IGNORED,
        "singan.methods.singan.penalty.x_penalty_gradients__mutmut_148":
            MASK_IGNORED,
        "singan.methods.singan.penalty.x_penalty_gradients__mutmut_149":
            MASK_IGNORED,
        "singan.methods.singan.penalty.x_penalty_gradients__mutmut_150":
            MASK_IGNORED,
        "singan.methods.singan.penalty.x_penalty_gradients__mutmut_126":
            SELF_IS_RESULT,
        "singan.methods.singan.penalty.x_penalty_gradients__mutmut_132":
            SELF_IS_RESULT,
        "singan.methods.singan.penalty.x_penalty_gradients__mutmut_184":
            SELF_IS_RESULT,
        "singan.methods.singan.penalty.x_penalty_gradients__mutmut_190":
            SELF_IS_RESULT,
        "singan.methods.singan.penalty.x_penalty_gradients__mutmut_64":
            SELF_IS_RESULT,
        "singan.methods.singan.penalty.x_penalty_gradients__mutmut_72":
            SELF_IS_RESULT,
        "singan.methods.singan.penalty.x_penalty_gradients__mutmut_205":
            RELEASED,
        "singan.methods.singan.penalty.x_penalty_gradients__mutmut_48":
            RELEASED,
        "singan.methods.singan.penalty.x_penalty_gradients__mutmut_73":
            RELEASED,
        "singan.methods.singan.penalty.x_penalty_gradients__mutmut_224":
            ZERO_SIGN,
        "singan.methods.singan.penalty.x_penalty_gradients__mutmut_225":
            ZERO_SIGN,
        "singan.methods.singan.penalty.x_penalty_gradients__mutmut_227":
            ZERO_SIGN,
    },
    "progress": {
        "singan.progress.xǁRunLineǁ__init____mutmut_4": TOTAL_UNSHOWN,
        "singan.progress.xǁRunLineǁ__init____mutmut_9": TOTAL_UNSHOWN,
        "singan.progress.xǁRunLineǁ__init____mutmut_14": TOTAL_UNSHOWN,
        "singan.progress.xǁRunLineǁ__init____mutmut_7":
            "leave=None: tqdm then leaves a bar only at position 0; the run line is at 1",
        "singan.progress.xǁProgressBarǁupdate_to__mutmut_7":
            "set_postfix(refresh=None): tqdm redraws only when refresh is true, as with False",
        "singan.progress.xǁWorkClockǁper_iteration__mutmut_44":
            "det >= threshold for det > threshold: equal only when every cost is 0, where "
            "both divide by zero",
        "singan.progress.xǁWorkClockǁper_iteration__mutmut_58":
            "a > 0 for a >= 0: with a = 0 the fit is the line through zero, which the "
            "fallback fits too",
        "singan.progress.xǁWorkClockǁper_iteration__mutmut_63":
            "scc >= 0 for scc > 0: scc = 0 needs every cost 0, and then the costs are not "
            "distinct (the other condition)",
    },
}

# what a copy of the checkout needs for the fast tests
COPIED = ["singan", "SIFID", "tests", "Input", "main_train.py", "random_samples.py", "config.py"]


def prepare(module: str, work: Path) -> None:
    """A copy of the checkout in `work` with mutmut's settings for `module`."""
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, work / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif source.exists():
            shutil.copy2(source, work / name)
    # mutmut's settings; --resume keeps them (mutmut starts over when they change, so a new
    # test file in MODULES needs a fresh run)
    selection = "\n    ".join(MODULES[module])
    also = "\n    ".join(name for name in COPIED if name not in ("singan", "tests"))
    (work / "setup.cfg").write_text(f"""[mutmut]
source_paths = singan
only_mutate = singan/{FILES.get(module, f"{module}.py")}
also_copy =
    {also}
pytest_add_cli_args =
    -p
    no:cacheprovider
    -p
    no:xdist
    -W
    ignore
pytest_add_cli_args_test_selection =
    {selection}
process_isolation = forkserver
""")


def survivors_of(work: Path, env: dict) -> list:
    """The mutants of an earlier run in `work` that survived (mutmut's `results`)."""
    listed = subprocess.run([sys.executable, "-m", "mutmut", "results"], cwd=work, env=env,
                            capture_output=True, text=True).stdout
    return [name for name, status in re.findall(r"^\s+(\S+): (\w[\w ]*)$", listed, re.M)
            if status == "survived"]


def run_module(module: str, children: int, keep: bool, resume: str = None,
               score_only: bool = False) -> dict:
    """mutmut over `module` in a fresh copy of the checkout; or, with resume (the copy an
    earlier run kept), its tests refreshed from the checkout and only its survivors run again
    (mutmut finds the new tests that reach them; killed mutants stay killed as long as no test
    was weakened)."""
    if resume and score_only:
        work = Path(resume)
    elif resume:
        work = Path(resume)
        shutil.rmtree(work / "tests")
        shutil.copytree(ROOT / "tests", work / "tests",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    else:
        work = Path(tempfile.mkdtemp(prefix=f"singan-mutation-{module}-"))
        prepare(module, work)
    env = dict(os.environ, CI="true", OMP_NUM_THREADS="1", PYTHONHASHSEED="0",
               SINGAN_SHARED=str(os.environ.get("SINGAN_SHARED", ROOT.parent / "shared")))
    env.pop("PYTHONPATH", None)
    again = [name for name in survivors_of(work, env)
             if name not in EQUIVALENT.get(module, {})] if resume else []
    started = time.perf_counter()
    if score_only:
        run = subprocess.CompletedProcess([], 0, "", "")
    else:
        run = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children",
                              str(children), *again], cwd=work, env=env, capture_output=True,
                             text=True)
    seconds = time.perf_counter() - started
    subprocess.run([sys.executable, "-m", "mutmut", "export-cicd-stats"], cwd=work, env=env,
                   capture_output=True, text=True)
    stats_file = work / "mutants" / "mutmut-cicd-stats.json"
    if run.returncode != 0 or not stats_file.exists():
        print(run.stdout[-3000:], run.stderr[-3000:], sep="\n")
        raise SystemExit(f"{module}: mutmut did not finish (see above); the copy is in {work}")
    stats = json.loads(stats_file.read_text())
    listed = subprocess.run([sys.executable, "-m", "mutmut", "results"], cwd=work, env=env,
                            capture_output=True, text=True).stdout
    not_killed = dict(re.findall(r"^\s+(\S+): (\w[\w ]*)$", listed, re.M))
    equivalent = {name for name in not_killed if name in EQUIVALENT.get(module, {})}
    # a mutant whose KeyboardInterrupt stops pytest (exit code 2, "interrupted") failed the run
    caught_otherwise = {name for name, status in not_killed.items()
                        if status in ("timeout", "check was interrupted by user")}
    survivors = sorted(name for name in not_killed
                       if name not in equivalent and name not in caught_otherwise)
    diffs = {name: subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=work,
                                  env=env, capture_output=True, text=True).stdout
             for name in survivors}
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    counted = stats["total"] - len(equivalent) - stats.get("skipped", 0)
    caught = counted - len(survivors)
    return {"module": module, "total": stats["total"], "killed": stats["killed"],
            "timeout": stats.get("timeout", 0),
            "interrupted": stats.get("check_was_interrupted_by_user", 0),
            "equivalent": len(equivalent),
            "survived": len(survivors), "no_tests": stats.get("no_tests", 0),
            "score": caught / counted if counted else 1.0, "seconds": seconds,
            "survivors": survivors, "diffs": diffs, "work": str(work)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help=f"of {', '.join(MODULES)} (default: all)")
    parser.add_argument("--children", type=int, default=1,
                        help="mutants tested at once (1: leave the other core to other work)")
    parser.add_argument("--keep", action="store_true", help="keep each module's copy")
    parser.add_argument("--resume", default=None, metavar="DIR",
                        help="the copy a --keep run of ONE module left: run its survivors "
                             "again against the checkout's tests as they are now")
    parser.add_argument("--score", action="store_true",
                        help="with --resume: only score the copy's results, run nothing")
    parser.add_argument("--list", action="store_true", help="list the modules and their tests")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    if args.list:
        for module, tests in MODULES.items():
            print(f"{module:11s} {' '.join(tests)}")
        return
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"unknown module(s) {unknown}; choose from {', '.join(MODULES)}")
    if args.resume and len(args.modules) != 1:
        parser.error("--resume takes exactly one module")
    if args.score and not args.resume:
        parser.error("--score needs --resume DIR")
    results = []
    for module in args.modules or list(MODULES):
        result = run_module(module, args.children, args.keep or bool(args.resume), args.resume,
                            args.score)
        results.append(result)
        print(f"{module:11s} {100 * result['score']:5.1f}% killed  ({result['killed']} killed, "
              f"{result['timeout']} timed out, {result['interrupted']} interrupted, "
              f"{result['survived']} survived, "
              f"{result['equivalent']} equivalent, of {result['total']}; "
              f"{result['seconds'] / 60:.1f} min)", flush=True)
        if args.keep or args.resume:
            print(f"  the copy: {result['work']}")
        for name in result["survivors"]:
            print(f"  survived: {name}\n" + "".join(f"    {line}\n" for line in
                                                 result["diffs"][name].splitlines()[1:]))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    print("\nmodule      score")
    for result in results:
        print(f"{result['module']:11s} {100 * result['score']:5.1f}%")


if __name__ == "__main__":
    main()
