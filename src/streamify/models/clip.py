"""Audio for the demo: the built-in clip, and audio files read (resampled) and written.

The built-in clip is 6 s of the held-out music test set (``docs/data.md``), 22.05 kHz, stored
as 16-bit integers in a torch file, so that ``streamify demo`` needs no audio library. Files
(``--input`` / ``--output``) need soundfile, and soxr to resample.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

import torch
from torch import Tensor

from streamify.extras import require
from streamify.layers.base import StreamingError

CLIP = Path(__file__).with_name("weights") / "demo_clip.pt"


def builtin_clip() -> Tensor:
    """``[1, 1, n]`` float32 samples of the built-in clip (22.05 kHz, 6 s)."""
    data = torch.load(str(CLIP), weights_only=True)
    return (data["samples"].to(torch.float32) / 32767.0).view(1, 1, -1)


def read_audio(path: Union[str, Path], sample_rate: int) -> Tensor:
    """``[1, 1, n]`` float32: ``path`` mixed to mono and resampled to ``sample_rate`` (soxr, very high quality).

    Raises:
        StreamingError: soundfile or soxr is missing, or the file cannot be read.
    """
    soundfile = require("soundfile", "reading audio files", "host")
    if not Path(path).is_file():
        state = "is a folder" if Path(path).exists() else "does not exist"
        raise StreamingError(f"streamify: cannot read {path}: it {state}; give an audio file")
    try:
        audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as error:  # soundfile raises LibsndfileError, RuntimeError, OSError...
        raise StreamingError(f"streamify: cannot read {path}: {error}") from error
    mono = audio.mean(axis=1)
    if rate != sample_rate:
        soxr = require("soxr", f"resampling {rate} Hz audio", "host")
        mono = soxr.resample(mono, rate, sample_rate, quality="VHQ")
    return torch.from_numpy(mono.copy()).to(torch.float32).view(1, 1, -1)


def write_audio(path: Union[str, Path], x: Tensor, sample_rate: int) -> None:
    """Write ``x`` ``[1, 1, n]`` (or ``[n]``) as a 16-bit WAV (or whatever format the suffix names)."""
    soundfile = require("soundfile", "writing audio files", "host")
    soundfile.write(str(path), x.detach().reshape(-1).clamp(-1, 1).cpu().numpy(), sample_rate)
