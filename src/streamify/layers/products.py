"""Kernels for convolutions over few frames, and the choice among them.

A streaming call of a low-rate conv computes few windows (``rows`` = batch items x frames);
its cost is reading the weights. PyTorch's generic conv kernels are slow there (im2col
loops, per-channel dilated loops, weight re-layouts), so a conv gathers its windows
``[rows, K]`` and multiplies them by its weight viewed as a matrix ``[N, K]`` instead.
Which BLAS call reads the weights fastest depends on the rows, the matrix shape, the CPU
and the BLAS (MKL differs from OpenBLAS, and a weight matrix read once per call is rarely
in cache): the products below compute the same sums in different orders; a layer uses
:func:`default_product` unless its ``products`` table (row count -> product) names another,
and :func:`streamify.tune` fills that table by timing each product inside the model.
"""

from __future__ import annotations

from typing import Dict, Optional

import torch
from torch import Tensor

#: PyTorch's generic kernel (``F.conv1d`` / ``F.conv_transpose1d``)
GENERIC = 0
#: a matrix-vector product (one row only)
MATRIX_VECTOR = 1
#: ``rows @ weight.t()``
ROWS_LEFT = 2
#: ``(weight @ rows.t()).t()``
WEIGHT_LEFT = 3

PRODUCT_NAMES: Dict[int, str] = {
    GENERIC: "generic",
    MATRIX_VECTOR: "matrix-vector",
    ROWS_LEFT: "rows-left",
    WEIGHT_LEFT: "weight-left",
}


def default_product(rows: int, fast_path_rows: int) -> int:
    """The product of an untuned layer: a product up to ``fast_path_rows`` rows, the generic kernel beyond."""
    # literals: TorchScript compiles this function and cannot read module globals
    if rows <= 0 or rows > fast_path_rows:
        return 0  # GENERIC
    if rows == 1:
        return 1  # MATRIX_VECTOR
    return 2  # ROWS_LEFT


def rows_by_weight(rows: Tensor, weight: Tensor, bias: Optional[Tensor], product: int) -> Tensor:
    """``rows @ weight.t() + bias``: ``rows`` ``[M, K]``, ``weight`` ``[N, K]``, ``bias`` ``[N]`` -> ``[M, N]``.

    ``product`` is :data:`MATRIX_VECTOR` (taken as :data:`ROWS_LEFT` when ``M > 1``),
    :data:`ROWS_LEFT` or :data:`WEIGHT_LEFT`. ``weight`` is read where it is stored, never
    copied. The result may be a transposed view.
    """
    if product == 1 and rows.size(0) == 1:  # MATRIX_VECTOR (literals: TorchScript cannot read globals)
        y = torch.mv(weight, rows[0]).unsqueeze(0)
    elif product == 3:  # WEIGHT_LEFT
        y = torch.mm(weight, rows.t()).t()
    else:
        y = torch.mm(rows, weight.t())
    # the bias is added apart (never addmm / addmv): TorchScript's optimiser splits those into a
    # product and an add, so fused calls would round differently in eager and scripted models
    if bias is not None:
        y = y + bias
    return y
