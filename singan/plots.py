"""The loss plot written beside every trained scale or stage (losses.png)."""
import io
from pathlib import Path

from .image_io import atomic_write_bytes


def plot_losses(path: Path, losses: dict, scale: int) -> None:
    """losses.png: the adversarial losses and the reconstruction loss over the iterations."""
    # matplotlib is imported here, not with the package: it costs about a second, which every
    # script that only generates (and every `--help`) would otherwise pay at start-up.
    from matplotlib.figure import Figure   # no pyplot: no global state, no GUI backend
    fig = Figure(figsize=(9, 3.2))
    ax = fig.subplots(1, 2)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.16, top=0.9, wspace=0.22)
    for key in ("errD", "errG"):
        ax[0].plot(losses[key].numpy(), label=key, linewidth=0.8)
    ax[0].set_title(f"scale {scale}: adversarial losses")
    ax[0].legend()
    ax[1].plot(losses["rec"].numpy(), label="alpha * rec", linewidth=0.8, color="C2")
    ax[1].set_yscale("log")
    ax[1].set_title("reconstruction loss")
    for a in ax:
        a.set_xlabel("iteration")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    atomic_write_bytes(path, buffer.getvalue())
