"""Small models for the serve tests, importable by Ray's replicas as ``serve_models:...`` factories."""

from __future__ import annotations

import torch
from torch import nn


def strided_codec() -> nn.Module:
    """1 -> 1 channel, non-causal, one latent frame per 16 samples (buffer multiple 16): strided phase matters."""
    torch.manual_seed(11)
    return nn.Sequential(
        nn.Conv1d(1, 6, 9, padding=4),
        nn.ELU(),
        nn.Conv1d(6, 8, 32, stride=16, padding=8),
        nn.ELU(),
        nn.ConvTranspose1d(8, 6, 32, stride=16, padding=8),
        nn.ELU(),
        nn.Conv1d(6, 1, 7, padding=3),
    ).eval()


class _RecurrentNet(nn.Module):
    """A look-ahead conv, a GRU over the stride-2 stream, a transposed conv back to audio rate."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Conv1d(1, 6, 5, padding=2)
        self.down = nn.Conv1d(6, 6, 4, stride=2, padding=1)
        self.gru = nn.GRU(6, 6, batch_first=True)
        self.out = nn.ConvTranspose1d(6, 1, 4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.down(torch.tanh(self.inp(x)))
        y, _ = self.gru(h.transpose(1, 2))
        return self.out(h + y.transpose(1, 2))


def recurrent_net() -> nn.Module:
    """A model with an unbounded receptive field (a GRU): its sessions recover from snapshots."""
    torch.manual_seed(12)
    return _RecurrentNet().eval()
