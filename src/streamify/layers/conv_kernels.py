"""Kernels for convolutions over few frames, and the choice among them.

A streaming call of a low-rate conv computes few windows (``rows`` = batch items x frames);
its cost is reading the weights. PyTorch's generic conv kernels are slow there (im2col
loops, per-channel dilated loops, weight re-layouts), so a conv gathers its windows
``[rows, K]`` and multiplies them by its weight viewed as a matrix ``[N, K]`` instead.
Which way of computing a call (its kernel) reads the weights fastest depends on the rows, the
matrix shape, the CPU and the BLAS (MKL differs from OpenBLAS, and a weight matrix read once per
call is rarely in cache): the :class:`ConvKernel` kinds compute the same sums in different orders;
a layer uses :func:`default_kernel` unless its ``kernel_table`` (row count -> ``ConvKernel`` value)
names another, and :func:`streamify.tune` fills that table by timing each kernel inside the
model. A layer runs the matrix products through its ``matmul`` submodule: :class:`TorchMatmul`
(PyTorch ops only, what exported files keep) or :class:`streamify.native.NativeMatmul`,
which adds :attr:`ConvKernel.NATIVE`, a kernel compiled for this machine.
"""

from __future__ import annotations

import enum
from typing import Dict, Optional

import torch
from torch import Tensor, nn


class ConvKernel(enum.Enum):
    """How a conv computes a call; a layer's ``kernel_table`` stores the ``value`` (an int).

    TorchScript compiles ``ConvKernel.X.value`` to the constant, so scripted and saved models hold
    plain ints. The values are kept across versions: 1, a matrix-vector product for one row, was
    dropped (no faster than :attr:`ROWS_LEFT` on the reference model, docs/benchmarks.md), and a
    table saved by an earlier version that names it runs :attr:`ROWS_LEFT` (the same sums).
    """

    #: PyTorch's generic kernel (``F.conv1d`` / ``F.conv_transpose1d``)
    GENERIC = 0
    #: ``rows @ weight.t()``: the default of calls up to a layer's ``fast_path_rows`` rows
    ROWS_LEFT = 2
    #: ``(weight @ rows.t()).t()``
    WEIGHT_LEFT = 3
    #: ``rows @ weight.t()`` over blocks of weight rows small enough to stay in the CPU's cache (one
    #: batched product): BLAS's few-row kernels then read each weight once from memory
    BLOCKED = 4
    #: the compiled kernel of :mod:`streamify.native` (each weight read once for all rows); a layer
    #: whose ``matmul`` is the portable :class:`TorchMatmul` runs it as :attr:`ROWS_LEFT`
    NATIVE = 5
    #: per batch item, ``weight @ windows`` with the windows gathered channel-major (``[in * kernel,
    #: frames]``): the output comes out in the stream's own ``[batch, out, frames]`` layout, with no
    #: transposes before or after; suits convs over many frames (the layer computes it, not
    #: :func:`rows_by_weight`)
    COLUMNS = 6

    @property
    def label(self) -> str:
        """The name reports use: ``'rows-left'``, ``'native'``, ..."""
        return self.name.lower().replace("_", "-")


#: each kernel's value -> its label (tables store values; reports show labels)
KERNEL_LABELS: Dict[int, str] = {kernel.value: kernel.label for kernel in ConvKernel}

#: bytes of weights per block of the blocked product (fits a core's L2 cache with room to spare)
BLOCK_BYTES = 256 * 1024


def block_rows(out_features: int, in_features: int, element_size: int = 4) -> int:
    """Rows per block of a ``[out_features, in_features]`` weight for :attr:`ConvKernel.BLOCKED`: the
    largest divisor of ``out_features`` whose block holds at most :data:`BLOCK_BYTES` (at least 1)."""
    target = max(1, BLOCK_BYTES // max(1, in_features * element_size))
    for rows in range(min(target, out_features), 0, -1):
        if out_features % rows == 0:
            return rows
    return 1


#: untuned calls of at most this many rows take :attr:`ConvKernel.BLOCKED` when the weight spans several blocks
#: (:func:`default_kernel` holds it as a literal: TorchScript does not read module globals)
FEW_ROWS = 8


def default_kernel(rows: int, fast_path_rows: int, weight_blocks: int = 1) -> int:
    """The kernel of an untuned layer: :attr:`ConvKernel.BLOCKED` for calls of at most :data:`FEW_ROWS`
    rows over a weight of several blocks (``weight_blocks`` > 1, :func:`block_rows`), else
    :attr:`ConvKernel.ROWS_LEFT` up to ``fast_path_rows`` rows, :attr:`ConvKernel.GENERIC` beyond (and for none).

    Few rows by a large weight is what a streaming call of a low-rate conv computes: there the
    BLAS reads the weight well below the memory's bandwidth (MKL on an AMD EPYC: 9 GB/s at 2 rows,
    against 25 GB/s for a plain read), and block by block each weight is read once, from cache
    for every row after the first (docs/rave.md: RAVE's encoder)."""
    if rows <= 0 or rows > fast_path_rows:
        return ConvKernel.GENERIC.value
    if rows <= 8 and weight_blocks > 1:  # FEW_ROWS
        return ConvKernel.BLOCKED.value
    return ConvKernel.ROWS_LEFT.value


def choose_kernel(table: Dict[int, int], rows: int, fast_path_rows: int, weight_blocks: int = 1) -> int:
    """The kernel a layer runs for ``rows``: its ``table``'s entry (tuned), else :func:`default_kernel`."""
    if rows in table:
        return table[rows]
    return default_kernel(rows, fast_path_rows, weight_blocks)


def rows_by_weight(
    rows: Tensor, weight: Tensor, bias: Optional[Tensor], choice: int, rows_per_block: int = 1
) -> Tensor:
    """``rows @ weight.t() + bias``: ``rows`` ``[M, K]``, ``weight`` ``[N, K]``, ``bias`` ``[N]`` -> ``[M, N]``.

    ``choice`` (a :class:`ConvKernel` value) is :attr:`ConvKernel.WEIGHT_LEFT` or :attr:`ConvKernel.BLOCKED` (blocks of
    ``rows_per_block`` weight rows, a divisor of ``N``: :func:`block_rows`); any other value runs
    :attr:`ConvKernel.ROWS_LEFT`. ``weight`` is read where it is stored, never copied. The result
    may be a transposed view.
    """
    if choice == ConvKernel.WEIGHT_LEFT.value:
        y = torch.mm(weight, rows.t()).t()
    elif choice == ConvKernel.BLOCKED.value:
        m, n, k = rows.size(0), weight.size(0), weight.size(1)
        blocks = weight.reshape(n // rows_per_block, rows_per_block, k)
        y = torch.bmm(rows.unsqueeze(0).expand(blocks.size(0), m, k), blocks.transpose(1, 2))
        y = y.transpose(0, 1).reshape(m, n)  # [blocks, M, rows_per_block] -> [M, N]
    else:
        y = torch.mm(rows, weight.t())
    return add_bias(y, bias)


def add_bias(y: Tensor, bias: Optional[Tensor]) -> Tensor:
    """``y + bias`` over ``y``'s last dimension, ``y`` the tensor a product has just made.

    Apart from the product (never addmm / addmv): TorchScript's optimiser splits those into a
    product and an add, so fused calls would round differently in eager and scripted models. In
    place when no gradient is recorded (``y``, or the tensor it views, was just made by the product
    and nothing else holds it); out of place when one is, since autograd (scripted models' above
    all) refuses in-place updates of some of these views.
    """
    if bias is not None:
        if y.requires_grad:
            y = y + bias
        else:
            y.add_(bias)
    return y


class TorchMatmul(nn.Module):
    """The matrix products of one conv layer with PyTorch's ops only: :func:`rows_by_weight`.

    A conv calls ``self.matmul.forward(rows, weight, bias, choice, rows_per_block)``; TorchScript compiles
    whichever module the layer holds, so a layer holding this one scripts to portable code
    (any libtorch, nn~, ONNX) whatever its table says.
    """

    def forward(self, rows: Tensor, weight: Tensor, bias: Optional[Tensor], choice: int, rows_per_block: int) -> Tensor:
        return rows_by_weight(rows, weight, bias, choice, rows_per_block)
