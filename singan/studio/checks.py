"""The studio's checks of what a client sends: a browser sends what the page offers, but any
program can call the endpoints with anything. Every argument is checked here, on the server,
before a library call sees it: its type, and a range for every number (the page's own ranges;
the library's resource checks refuse what is still too large for the machine)."""
import math
from typing import Iterable, Optional

from ..errors import SinGANError

# The ranges the page offers; a request outside them is refused.
NUM_SAMPLES = (1, 64)
RETARGET = (0.25, 4.0)          # vertical / horizontal scale of arbitrary-size samples
SEED = (0, 2 ** 31 - 1)
SR_FACTOR = (1.2, 8.0)
NUM_FRAMES = (2, 300)
FPS = (1.0, 60.0)
WALK = (0.0, 1.0)               # animation's alpha and beta
MAX_SIZE = (16, 2048)
MIN_SIZE = (8, 2048)
NITER = (1, 20000)
SCALE_FACTOR = (0.25, 0.95)
STAGES = (2, 16)
LEVEL = (0, 64)                 # a start or injection scale, before the model says more


def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SinGANError(f"{what} must be a number, got {str(value)[:40]!r}")
    if not math.isfinite(value):
        raise SinGANError(f"{what} must be a finite number, got {value}")
    return value


def _text(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e12 else f"{x:g}"


def real(value, what: str, bounds) -> float:
    """A finite number within bounds (low, high), both included."""
    value = float(_number(value, what))
    low, high = bounds
    if not low <= value <= high:
        raise SinGANError(f"{what} must be between {_text(low)} and {_text(high)}, got "
                          f"{_text(value)}")
    return value


def whole(value, what: str, bounds) -> int:
    """A whole number within bounds (low, high), both included."""
    value = _number(value, what)
    if value != int(value):
        raise SinGANError(f"{what} must be a whole number, got {_text(value)}")
    return int(real(value, what, bounds))


def optional_whole(value, what: str, bounds) -> Optional[int]:
    """whole(), where None or empty text means 'the default' (None)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise SinGANError(f"{what} must be a whole number or empty, got "
                              f"{value.strip()[:40]!r}") from None
    return whole(value, what, bounds)


def one_of(value, what: str, choices: Iterable[str]) -> str:
    choices = list(choices)
    if not isinstance(value, str) or value not in choices:
        raise SinGANError(f"{what} must be one of {', '.join(choices)}, got {str(value)[:40]!r}")
    return value


def flag(value, what: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise SinGANError(f"{what} must be true or false, got {str(value)[:40]!r}")
    return value


def level(value, what: str, levels: range) -> int:
    """A start or injection scale that the model accepts (levels: the model's range)."""
    value = whole(value, what, LEVEL)
    if value not in levels:
        span = (f"{levels[0]}" if len(levels) == 1 else
                f"between {levels[0]} and {levels[-1]}") if len(levels) else "none"
        raise SinGANError(f"{what} must be {span} for this model, got {value}")
    return value
