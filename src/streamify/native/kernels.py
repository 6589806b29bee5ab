"""The native products as a conv's ``kernels``, and turning them on and off in a model."""

from __future__ import annotations

from typing import List, Optional

import torch
from torch import Tensor, nn

from streamify.layers.products import Product, Products, add_bias, rows_by_weight


class NativeProducts(nn.Module):
    """A conv's products with :attr:`~streamify.layers.products.Product.NATIVE` run by the compiled
    ``torch.ops.streamify.rows_by_weight`` (:mod:`streamify.native.build` must have loaded it);
    every other product as :class:`~streamify.layers.products.Products` runs it.

    A scripted model holding these needs the op where it is loaded (import streamify and call
    :func:`streamify.native.load` first); exports call :func:`make_portable` on their copy.
    """

    def forward(
        self, rows: Tensor, weight: Tensor, bias: Optional[Tensor], product: int, rows_per_block: int
    ) -> Tensor:
        if product == Product.NATIVE.value:
            return add_bias(torch.ops.streamify.rows_by_weight(rows, weight), bias)
        return rows_by_weight(rows, weight, bias, product, rows_per_block)


def product_layers(model: nn.Module) -> List[nn.Module]:
    """The layers of ``model`` that run products (streaming convs and transposed convs)."""
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
    """Give ``layer`` the native kernels (its table decides where ``Product.NATIVE`` runs)."""
    if not isinstance(layer.kernels, NativeProducts):
        layer.kernels = NativeProducts()


def make_portable(model: nn.Module) -> int:
    """Make ``model`` script to PyTorch ops only: portable kernels everywhere, and every
    :attr:`~streamify.layers.products.Product.NATIVE` entry of a products table replaced by the
    layer's default product. Returns how many table entries changed. Exports call this on their
    copy of the model.
    """
    changed = 0
    for layer in product_layers(model):
        if isinstance(layer.kernels, NativeProducts):
            layer.kernels = Products()
        for rows in [r for r, p in layer.products.items() if p == Product.NATIVE.value]:
            del layer.products[rows]
            changed += 1
    return changed


def uses_native(model: nn.Module) -> bool:
    """Whether any layer of ``model`` holds the native kernels."""
    return any(isinstance(layer.kernels, NativeProducts) for layer in product_layers(model))
