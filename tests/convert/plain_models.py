"""Plain-PyTorch models written for the converter tests (no streamify layers)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import weight_norm


class ResBlock(nn.Module):
    """HiFi-GAN residual block: dilated 'same' convs with leaky ReLU, weight norm (old hook style)."""

    def __init__(self, channels: int, kernel: int, dilations=(1, 3, 5)) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            weight_norm(nn.Conv1d(channels, channels, kernel, dilation=d, padding=d * (kernel - 1) // 2))
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            weight_norm(nn.Conv1d(channels, channels, kernel, padding=(kernel - 1) // 2)) for _ in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            y = c2(F.leaky_relu(c1(F.leaky_relu(x, 0.1)), 0.1))
            x = x + y
        return x


class HiFiGANGenerator(nn.Module):
    """A small HiFi-GAN-style generator: mel-like input, transposed-conv upsampling, multi-receptive-field fusion."""

    def __init__(self, in_channels: int = 8, channels: int = 16, rates=(4, 2), kernels=(3, 5)) -> None:
        super().__init__()
        self.pre = weight_norm(nn.Conv1d(in_channels, channels, 7, padding=3))
        self.ups = nn.ModuleList()
        self.blocks = nn.ModuleList()
        ch = channels
        for rate in rates:
            self.ups.append(weight_norm(nn.ConvTranspose1d(ch, ch // 2, 2 * rate, rate, padding=rate // 2)))
            ch //= 2
            for k in kernels:
                self.blocks.append(ResBlock(ch, k))
        self.post = weight_norm(nn.Conv1d(ch, 1, 7, padding=3))
        self.num_kernels = len(kernels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre(x)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, 0.1))
            xs = None
            for j in range(self.num_kernels):
                y = self.blocks[i * self.num_kernels + j](x)
                xs = y if xs is None else xs + y
            x = xs / self.num_kernels
        return torch.tanh(self.post(F.leaky_relu(x)))


class CroppedResidualUnit(nn.Module):
    """A residual unit with an unpadded dilated conv that crops its skip by the length difference."""

    def __init__(self, channels: int = 4, dilation: int = 3, kernel: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel, dilation=dilation)
        self.out = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.out(F.elu(self.conv(F.elu(x))))
        crop = (x.shape[-1] - y.shape[-1]) // 2
        return x[..., crop : crop + y.shape[-1]] + y


class CroppedStack(nn.Module):
    """Unpadded residual units in a row, each shortening the signal."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Conv1d(1, 4, 3)
        self.units = nn.Sequential(CroppedResidualUnit(4, 1), CroppedResidualUnit(4, 3), CroppedResidualUnit(4, 9))
        self.outp = nn.Conv1d(4, 1, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outp(self.units(self.inp(x)))


class TinyAutoencoder(nn.Module):
    """An autoencoder with encode/decode methods, plain torch, reflect padding done in forward."""

    def __init__(self) -> None:
        super().__init__()
        self.enc1 = nn.Conv1d(1, 8, 5)
        self.enc2 = nn.Conv1d(8, 8, 4, stride=2)
        self.enc3 = nn.Conv1d(8, 4, 6, stride=3)
        self.dec1 = nn.ConvTranspose1d(4, 8, 6, 3, 1, 1)
        self.dec2 = nn.ConvTranspose1d(8, 8, 5, 2, 1, 0)
        self.dec3 = nn.Conv1d(8, 1, 3, padding=1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.enc1(F.pad(x, (2, 2), mode="constant")))
        x = F.relu(self.enc2(F.pad(x, (1, 1))))
        return self.enc3(F.pad(x, (2, 1)))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.dec1(z))
        x = F.relu(self.dec2(x))
        return self.dec3(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))
