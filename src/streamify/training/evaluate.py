"""Held-out quality of a RAVE-style model: the multiscale spectral distance of its reconstructions."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Union

import torch
from torch import nn

from streamify.training.dataset import audio_files, read_mono
from streamify.training.losses import multiscale_spectral_distance


def held_out_distance(model: nn.Module, folder: Union[str, Path], segment_seconds: float = 10.0) -> Dict[str, float]:
    """Mean multiscale spectral distance of ``model(x)`` to ``x`` over the audio files of ``folder``.

    Each file is resampled to ``model.sample_rate``, cut into segments of ``segment_seconds``
    (whole latent frames; a shorter tail is dropped) that are reconstructed offline one by one
    (float32, no gradients); the result is the mean over segments, with their count and seconds.
    """
    rate, ratio = int(model.sample_rate), int(model.ratio)
    length = max(1, round(segment_seconds * rate) // ratio) * ratio
    distances: List[float] = []
    model = model.eval()
    for path in audio_files(Path(folder)):
        x = torch.from_numpy(read_mono(path, rate))
        for start in range(0, x.numel() - length + 1, length):
            segment = x[start : start + length].view(1, 1, -1)
            with torch.no_grad():
                distances.append(float(multiscale_spectral_distance(model(segment), segment)))
    if not distances:
        raise ValueError(f"no audio segment of {segment_seconds} s under {folder}")
    return {
        "distance": sum(distances) / len(distances),
        "segments": float(len(distances)),
        "seconds": len(distances) * length / rate,
    }
