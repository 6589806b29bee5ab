"""The trained model shipped inside the package (``streamify.models.pretrained()``)."""

from __future__ import annotations

from pathlib import Path

from streamify.layers.base import StreamingError
from streamify.models.rave import RAVE

#: the ``small`` preset trained on the generated music set (docs/models.md)
WEIGHTS = Path(__file__).with_name("weights") / "small_music.pt"


def pretrained() -> RAVE:
    """The shipped trained model: ``small`` preset (22.05 kHz, ratio 512), float32, eval mode."""
    from streamify.models.checkpoint import load_checkpoint

    if not WEIGHTS.is_file():
        raise StreamingError(f"streamify: the shipped weights {WEIGHTS} are missing from this installation")
    return load_checkpoint(WEIGHTS)
