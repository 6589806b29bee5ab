"""Small models for the host tests (importable as ``host_models:...`` factories)."""

from __future__ import annotations

import torch
from torch import nn


def small_codec() -> nn.Module:
    """A plain non-causal conv net, 1 -> 1 channel, stride 2 down and up (buffer multiple 2); biases on."""
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Conv1d(1, 8, 9, padding=4),
        nn.ELU(),
        nn.Conv1d(8, 8, 4, stride=2, padding=1),
        nn.ELU(),
        nn.ConvTranspose1d(8, 8, 4, stride=2, padding=1),
        nn.ELU(),
        nn.Conv1d(8, 1, 5, padding=2),
        nn.Tanh(),
    ).eval()


def stereo_mixer() -> nn.Module:
    """2 -> 2 channels: a model whose channels are the file's channels (not batch items)."""
    torch.manual_seed(4)
    return nn.Sequential(nn.Conv1d(2, 4, 5, padding=2), nn.Tanh(), nn.Conv1d(4, 2, 3, padding=1)).eval()


def coarse_codec() -> nn.Module:
    """1 -> 1 channel through one latent frame per 16 samples (buffer multiple 16), non-causal."""
    torch.manual_seed(6)
    return nn.Sequential(
        nn.Conv1d(1, 4, 32, stride=16, padding=8), nn.ELU(), nn.ConvTranspose1d(4, 1, 32, stride=16, padding=8)
    ).eval()
