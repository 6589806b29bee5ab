"""The native products as a conv's ``matmul``, and turning them on and off in a model."""

from __future__ import annotations

from typing import List, Optional

import torch
from torch import Tensor, nn

from streamify.layers.conv_kernels import ConvKernel, TorchMatmul, add_bias, rows_by_weight


class NativeMatmul(nn.Module):
    """A conv's products with :attr:`~streamify.layers.conv_kernels.ConvKernel.NATIVE` run by the compiled
    ``torch.ops.streamify.rows_by_weight`` (:mod:`streamify.native.build` must have loaded it);
    every other product as :class:`~streamify.layers.conv_kernels.TorchMatmul` runs it.

    A scripted model holding these needs the op where it is loaded (import streamify and call
    :func:`streamify.native.load` first); exports call :func:`make_portable` on their copy.
    """

    def forward(self, rows: Tensor, weight: Tensor, bias: Optional[Tensor], choice: int, rows_per_block: int) -> Tensor:
        if choice == ConvKernel.NATIVE.value:
            return add_bias(torch.ops.streamify.rows_by_weight(rows, weight), bias)
        return rows_by_weight(rows, weight, bias, choice, rows_per_block)


def kernel_layers(model: nn.Module) -> List[nn.Module]:
    """The layers of ``model`` that have a kernel table (streaming convs and transposed convs)."""
    from streamify.layers.base import StreamingModule

    return [m for m in model.modules() if isinstance(m, StreamingModule) and m.tunable_matmul]


def can_run_native(layer: nn.Module) -> bool:
    """Whether ``layer``'s products can run natively: one group, float32 or float64 weights on the CPU."""
    weight = getattr(layer, "weight", None)
    return (
        weight is not None
        and int(getattr(layer, "groups", 1)) == 1
        and weight.device.type == "cpu"
        and weight.dtype in (torch.float32, torch.float64)
    )


def use_native(layer: nn.Module) -> None:
    """Give ``layer`` the native kernels (its table decides where ``ConvKernel.NATIVE`` runs)."""
    if not isinstance(layer.matmul, NativeMatmul):
        layer.matmul = NativeMatmul()


def make_portable(model: nn.Module) -> int:
    """Make ``model`` script to PyTorch ops only: portable kernels everywhere, and every
    :attr:`~streamify.layers.conv_kernels.ConvKernel.NATIVE` entry of a kernel table replaced by the
    layer's default kernel. Returns how many table entries changed. Exports call this on their
    copy of the model.
    """
    changed = 0
    for layer in kernel_layers(model):
        if isinstance(layer.matmul, NativeMatmul):
            layer.matmul = TorchMatmul()
        for rows in [r for r, p in layer.kernel_table.items() if p == ConvKernel.NATIVE.value]:
            del layer.kernel_table[rows]
            changed += 1
    return changed


def uses_native(model: nn.Module) -> bool:
    """Whether any layer of ``model`` holds the native kernels."""
    return any(isinstance(layer.matmul, NativeMatmul) for layer in kernel_layers(model))
