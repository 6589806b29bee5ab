"""Plain-PyTorch models for the export tests (random weights, float32)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PowerOfTwoAutoencoder(nn.Module):
    """encode / decode / forward with strides 2 and 4 (ratio 8, a power of two as nn~ needs)."""

    def __init__(self, latent: int = 4) -> None:
        super().__init__()
        self.e1 = nn.Conv1d(1, 8, 7, padding=3)
        self.e2 = nn.Conv1d(8, 8, 4, stride=2, padding=1)
        self.e3 = nn.Conv1d(8, latent, 8, stride=4, padding=2)
        self.d1 = nn.ConvTranspose1d(latent, 8, 8, 4, 2)
        self.d2 = nn.ConvTranspose1d(8, 8, 4, 2, 1)
        self.d3 = nn.Conv1d(8, 1, 5, padding=2)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.e3(F.elu(self.e2(F.elu(self.e1(x)))))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.d3(F.elu(self.d2(F.elu(self.d1(z))))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


class ResidualDelayNet(nn.Module):
    """Residual units whose shortcut meets a non-causal branch: conversion aligns them with Delay lines."""

    def __init__(self, channels: int = 6) -> None:
        super().__init__()
        self.inp = nn.Conv1d(2, channels, 3, padding=1)
        self.branch = nn.Sequential(nn.Conv1d(channels, channels, 5, padding=4, dilation=2), nn.GELU())
        self.gate = nn.Conv1d(channels, channels, 1)
        self.out = nn.Conv1d(channels, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        h = h + self.branch(h)
        h = h * torch.sigmoid(self.gate(h))
        return self.out(F.leaky_relu(h, 0.2))


class LstmNet(nn.Module):
    """Conv front end with look-ahead, a 2-layer LSTM fed by that delayed stream, transposed-conv output."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Conv1d(1, 8, 7)
        self.down = nn.Conv1d(8, 8, 4, stride=2, padding=1)
        self.lstm = nn.LSTM(8, 8, num_layers=2)
        self.out = nn.ConvTranspose1d(8, 1, 4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down(self.inp(F.pad(x, (3, 3))))
        y, _ = self.lstm(x.permute(2, 0, 1))
        return self.out(x + y.permute(1, 2, 0))


class GruPoolNet(nn.Module):
    """A batch-first GRU behind a 'same' conv, then a zero pad and a max pool (caches start at -inf)."""

    def __init__(self) -> None:
        super().__init__()
        self.pool_in = nn.MaxPool1d(3, 1, 1)
        self.inp = nn.Conv1d(2, 6, 9, padding=4)
        self.gru = nn.GRU(6, 5, batch_first=True)
        self.pool = nn.MaxPool1d(3, 1, 1)
        self.out = nn.Conv1d(5, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool_in(F.pad(x, (2, 0)))  # a pool fed a stream that starts before the signal
        y, _ = self.gru(self.inp(x).transpose(1, 2))
        return self.out(self.pool(F.pad(y.transpose(1, 2), (2, 0))))


def build(factory, seed: int = 0) -> nn.Module:
    """``factory()`` with its default initialisation drawn from ``seed`` (the global random state is left alone)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = factory()
    return model.eval()


class CoarseCodec(nn.Module):
    """One latent frame per 2048 samples: a buffer multiple of 2048, as RAVE-sized models have."""

    def __init__(self) -> None:
        super().__init__()
        self.pre = nn.Conv1d(1, 4, 5, padding=2)
        self.down = nn.Conv1d(4, 8, 2048, stride=2048)
        self.up = nn.ConvTranspose1d(8, 1, 2048, 2048)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(torch.tanh(self.down(F.elu(self.pre(x)))))


class PoolNet(nn.Module):
    """A max pool right on a conv's output: its cache starts at -inf, and zeros instead would show."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Conv1d(1, 4, 3, padding=1)
        self.pool = nn.MaxPool1d(5, 1, 2)
        self.out = nn.Conv1d(4, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.pool(self.inp(x) - 4.0))
