"""TensorBoard event files of a training (--tensorboard DIR): a progress consumer, as the
terminal's bar and the studio are. Needs the optional `tensorboard` package
(requirements-tensorboard.txt); without it the option is refused in one line."""
from pathlib import Path

from ..errors import SinGANError
from ..progress import ProgressEvent


class TensorBoardLog:
    """A train_model progress callback writing event files into `folder`:

    scalars, per level (tags "<unit> <k>/..."), at each reported iteration: the losses
    (errD, errG, rec, D_real, D_fake) and the last critic step's gradient penalty; per
    finished level (tag "noise_amp", step k) its noise amplitude; images, per finished level
    ("<unit> <k>/real", "/fake", "/reconstruction")."""

    def __init__(self, folder):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise SinGANError("--tensorboard needs the tensorboard package: pip install -r "
                              "requirements-tensorboard.txt (or leave --tensorboard out)") from None
        folder = Path(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise SinGANError(f"--tensorboard {folder}: cannot create it "
                              f"({err.strerror or type(err).__name__})") from None
        self.writer = SummaryWriter(str(folder))

    def __call__(self, event: ProgressEvent) -> None:
        level = f"{event.unit} {event.stage}"
        if event.kind == "iteration":
            for name, value in event.losses.items():
                self.writer.add_scalar(f"{level}/{name}", value, event.iteration)
            if event.gradient_penalty is not None:
                self.writer.add_scalar(f"{level}/gradient_penalty", event.gradient_penalty,
                                       event.iteration)
        elif event.kind == "stage":
            if event.noise_amp is not None:
                self.writer.add_scalar("noise_amp", event.noise_amp, event.stage)
            for name, image in (event.images or {}).items():
                pixels = ((image[0].float().clamp(-1, 1) + 1) / 2)      # [3, h, w] in [0, 1]
                self.writer.add_image(f"{level}/{name}", pixels, event.stage)
            self.writer.flush()

    def close(self) -> None:
        self.writer.close()
