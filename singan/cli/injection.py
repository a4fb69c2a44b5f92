"""What harmonization.py and editing.py share: open the trained model, inject the reference
image (naive or edited) at a scale, blend it in through its mask (apps.harmonize)."""
from pathlib import Path
from typing import List

from ..apps.generation import open_trained_model
from ..apps.harmonize import masked_injection
from . import resolve_seed
from .options import (add_injection_arguments, check_arguments, config_from_args,
                      get_arguments, model_dir_from_args)


def injection_main(doc: str, task: str, ref_dir: str, what: str, start_option: str,
                   mask_region: str) -> List[Path]:
    """Parse the script's options (its docstring `doc`) and run `task` ("harmonization" |
    "editing"); returns the files written."""
    parser = get_arguments(doc)
    add_injection_arguments(parser, task, ref_dir, what, start_option, mask_region=mask_region)
    args = parser.parse_args()
    check_arguments(parser, args)

    model = open_trained_model(model_dir_from_args(args), args.input_name,
                               config_from_args(args), args.device, args.input_dir)
    return masked_injection(
        task, model, args.input_name, Path(args.ref_dir) / args.ref_name,
        getattr(args, start_option), resolve_seed(args.manualSeed), args.out, args.mask,
        args.num_samples)
