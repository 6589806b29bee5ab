"""Discriminators of the adversarial phase: multi-scale (waveform at 1, 1/2, 1/4 rate) and multi-period."""

from __future__ import annotations

from typing import List, Sequence, Tuple

import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

Outputs = Tuple[List[Tensor], List[List[Tensor]]]  # (scores, hidden features) per discriminator


class ScaleDiscriminator(nn.Module):
    """Strided grouped 1-D convs over a waveform ``[B, 1, n]``: a score map and the hidden features."""

    def __init__(self, channels: int = 16, layers: int = 4) -> None:
        super().__init__()
        convs = [weight_norm(nn.Conv1d(1, channels, 15, padding=7))]
        c = channels
        for _ in range(layers):
            out = min(4 * c, 256)
            convs.append(weight_norm(nn.Conv1d(c, out, 41, stride=4, padding=20, groups=max(1, c // 4))))
            c = out
        convs.append(weight_norm(nn.Conv1d(c, c, 5, padding=2)))
        self.convs = nn.ModuleList(convs)
        self.score = weight_norm(nn.Conv1d(c, 1, 3, padding=1))

    def forward(self, x: Tensor) -> Tuple[Tensor, List[Tensor]]:
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
            features.append(x)
        return self.score(x), features


class PeriodDiscriminator(nn.Module):
    """2-D convs over the waveform folded by a period ``p``: ``[B, 1, n]`` -> ``[B, 1, n / p, p]``."""

    def __init__(self, period: int, channels: int = 16, layers: int = 4) -> None:
        super().__init__()
        self.period = period
        convs = []
        c_in = 1
        c = channels
        for _ in range(layers):
            convs.append(weight_norm(nn.Conv2d(c_in, c, (5, 1), stride=(3, 1), padding=(2, 0))))
            c_in, c = c, min(4 * c, 256)
        convs.append(weight_norm(nn.Conv2d(c_in, c_in, (5, 1), padding=(2, 0))))
        self.convs = nn.ModuleList(convs)
        self.score = weight_norm(nn.Conv2d(c_in, 1, (3, 1), padding=(1, 0)))

    def forward(self, x: Tensor) -> Tuple[Tensor, List[Tensor]]:
        n = x.size(-1)
        pad = (-n) % self.period
        x = F.pad(x, (0, pad), mode="reflect")
        x = x.view(x.size(0), 1, -1, self.period)
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
            features.append(x)
        return self.score(x), features


class Discriminators(nn.Module):
    """Multi-scale (``scales`` waveform rates) and multi-period (``periods``) discriminators together."""

    def __init__(self, scales: int = 3, periods: Sequence[int] = (2, 3, 5, 7, 11), channels: int = 16) -> None:
        super().__init__()
        self.scales = nn.ModuleList(ScaleDiscriminator(channels) for _ in range(scales))
        self.periods = nn.ModuleList(PeriodDiscriminator(p, channels) for p in periods)

    def forward(self, x: Tensor) -> Outputs:
        """``[B, 1, n]`` -> (scores, hidden features), one entry per discriminator."""
        scores, features = [], []
        scaled = x
        for index, discriminator in enumerate(self.scales):
            if index:
                scaled = F.avg_pool1d(scaled, 4, stride=2, padding=1)
            score, feature = discriminator(scaled)
            scores.append(score)
            features.append(feature)
        for discriminator in self.periods:
            score, feature = discriminator(x)
            scores.append(score)
            features.append(feature)
        return scores, features
