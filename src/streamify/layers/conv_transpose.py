"""Streaming 1-D transposed convolution of any shape, by overlap-add.

Offline, ``conv_transpose1d`` spreads each input frame ``j`` over the output frames
``j * stride + [0, span)`` of a full signal ``f`` and returns ``f[padding:]`` cut to
``(n - 1) * stride - 2 * padding + span + output_padding`` frames. Streaming, each
call of ``n`` frames computes its contributions without padding, adds the tail that
the previous call left on its first frames, emits the first ``n * stride`` frames
(complete: no later input reaches them) and keeps the rest as the next tail. The
output lags the offline output by ``input_delay * stride + padding`` frames, for
every kernel, stride, padding, output_padding, dilation and groups.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from streamify.layers.base import StreamingError, StreamingModule
from streamify.layers.conv import FAST_PATH_MAX_ROWS_TRANSPOSED
from streamify.layers.conv_kernels import ConvKernel, TorchMatmul, block_rows, choose_kernel
from streamify.timing import ceil_div, effective_kernel


class OverlapAdd(StreamingModule):
    """Streaming logic shared by transposed convolution and interpolating upsamplers.

    State: ``tail`` ``[batch, out_channels, max(span - stride, 0)]`` partial output frames.
    """

    _state_buffers = ("tail",)

    def __init__(self, span: int, stride: int, padding: int, channels: int) -> None:
        super().__init__()
        if stride < 1:
            raise StreamingError(f"streamify: {self.layer_name}: stride must be >= 1, got {stride}")
        self.stride = int(stride)
        self.span = int(span)
        self.padding = int(padding)
        self.tail_len = max(self.span - self.stride, 0)
        self.register_buffer("tail", torch.zeros(0, max(channels, 0), self.tail_len), persistent=False)
        self._set_ratio(1 / Fraction(self.stride))
        self.receptive_field = ceil_div(self.span, self.stride)
        self._configure()

    def _configure(self) -> None:
        self.delay = self.input_delay * self.stride + self.padding

    def _allocate(self, x: Tensor) -> None:
        self.tail = torch.zeros(x.size(0), self._tail_channels(x), self.tail_len, dtype=x.dtype, device=x.device)

    def _tail_channels(self, x: Tensor) -> int:
        return x.size(1)

    def _release_state(self) -> None:
        self.tail = torch.zeros(0, self.tail.size(1), self.tail_len, dtype=self.tail.dtype, device=self.tail.device)

    def _reset_items(self, index: Tensor) -> None:
        self.tail.index_fill_(0, index, 0.0)

    def _overlap_add(self, full: Tensor, n: int) -> Tensor:
        """Emit ``n * stride`` complete frames of ``full`` (contributions of this call, no bias)."""
        emitted = n * self.stride
        if full.size(-1) < emitted:
            full = F.pad(full, [0, emitted - full.size(-1)])
        if self.tail_len > 0:
            # out of place where ONNX export would drop an in-place update of a view, and where autograd
            # records (it refuses in-place updates of some views, in scripted models above all)
            if torch.jit.is_tracing() or full.requires_grad:
                head = full.narrow(2, 0, self.tail_len) + self.tail
                full = torch.cat([head, full.narrow(2, self.tail_len, full.size(-1) - self.tail_len)], -1)
            else:
                full.narrow(2, 0, self.tail_len).add_(self.tail)  # ``full`` is this call's own new tensor
            self.tail = full.narrow(2, emitted, self.tail_len).detach()
        return full.narrow(2, 0, emitted)


class ConvTranspose1d(OverlapAdd):
    """Streaming transposed convolution; same arguments as :class:`torch.nn.ConvTranspose1d`.

    Any kernel, stride, padding, output padding, dilation and groups: the left crop ``padding``
    becomes delay (``delay = input_delay * stride + padding``).

    Shape:
        input ``[batch, in_channels, n]``, any ``n``; output ``[batch, out_channels, n * stride]``,
        ``delay`` frames behind the offline output.

    >>> import torch
    >>> from streamify.layers import ConvTranspose1d
    >>> up = ConvTranspose1d(4, 1, kernel_size=4, stride=2, padding=1)
    >>> x = torch.randn(1, 4, 10)
    >>> y = torch.cat([up(x[..., :5]), up(x[..., 5:])], -1)
    >>> y.shape, up.delay
    (torch.Size([1, 1, 20]), 1)
    >>> torch.allclose(y[..., 1:], up.offline(x)[..., :19], atol=1e-6)
    True
    """

    #: rows per call (batch x frames) -> kernel, a ConvKernel value (:mod:`streamify.layers.conv_kernels`); see :func:`streamify.tune`
    kernel_table: Dict[int, int]

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        output_padding: int = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: int = 1,
        device: Optional[torch.device] = None,
        dtype: Optional[torch.dtype] = None,
    ) -> None:
        reference = nn.ConvTranspose1d(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            output_padding,
            groups,
            bias,
            dilation,
            device=device,
            dtype=dtype,
        )
        self._init_from(reference.weight, reference.bias, stride, padding, output_padding, dilation, groups)

    @classmethod
    def from_torch(cls, conv: nn.ConvTranspose1d) -> ConvTranspose1d:
        """A streaming copy of ``conv`` (its weights cloned)."""
        if conv.padding_mode != "zeros":
            raise StreamingError("streamify: ConvTranspose1d: only zeros padding_mode exists for transposed convs")
        module = cls.__new__(cls)
        bias = None if conv.bias is None else conv.bias.detach().clone()
        module._init_from(
            conv.weight.detach().clone(),
            bias,
            int(conv.stride[0]),
            int(conv.padding[0]),
            int(conv.output_padding[0]),
            int(conv.dilation[0]),
            conv.groups,
        )
        return module

    def _init_from(
        self,
        weight: Tensor,
        bias: Optional[Tensor],
        stride: int,
        padding: int,
        output_padding: int,
        dilation: int,
        groups: int,
    ) -> None:
        kernel_size = weight.size(-1)
        super().__init__(effective_kernel(kernel_size, dilation), stride, padding, weight.size(1) * groups)
        self.kernel_size = kernel_size
        self.dilation = int(dilation)
        self.output_padding = int(output_padding)
        self.groups = int(groups)
        self.in_channels = weight.size(0)
        self.out_channels = weight.size(1) * groups
        self.weight = nn.Parameter(weight)
        self.bias = None if bias is None else nn.Parameter(bias)
        self.dtype_marker = torch.zeros(0, dtype=weight.dtype, device=weight.device)
        #: untuned calls of at most this many input frames x batch items take a matrix product (0: never)
        self.fast_path_rows = FAST_PATH_MAX_ROWS_TRANSPOSED
        self.kernel_table: Dict[int, int] = {}
        #: weight rows per block of the blocked product (:func:`streamify.layers.conv_kernels.block_rows`)
        self.rows_per_block = block_rows(weight.size(1) * kernel_size, weight.size(0) // self.groups)
        #: runs the matrix products (:class:`~streamify.layers.conv_kernels.TorchMatmul`, or the native ones)
        self.matmul: nn.Module = TorchMatmul()

    def _tail_channels(self, x: Tensor) -> int:
        return self.out_channels

    def stream(self, x: Tensor) -> Tensor:
        x = self._mask_input(x)
        n = x.size(-1)
        rows = n * x.size(0)
        choice = choose_kernel(self.kernel_table, rows, self.fast_path_rows)
        if choice != ConvKernel.GENERIC.value and not torch.jit.is_tracing():
            full = self._contributions_matmul(x, choice)
        else:
            full = F.conv_transpose1d(x, self.weight, None, self.stride, 0, 0, self.groups, self.dilation)
        y = self._overlap_add(full, x.size(-1))
        bias = self.bias
        if bias is not None:
            y = y + bias.unsqueeze(-1)
        return y

    def _contributions_matmul(self, x: Tensor, choice: int) -> Tensor:
        """``F.conv_transpose1d`` without padding or bias as one (batched) matrix product and an overlap-add.

        Each input frame times the weight viewed as ``[in, out * kernel]`` (a view per call, never
        a copy) gives its ``kernel`` taps; ``F.fold`` adds them at ``stride`` and ``dilation``.
        """
        batch, n = x.size(0), x.size(-1)
        groups, kernel = self.groups, self.kernel_size
        per_in = self.in_channels // groups
        per_out = self.out_channels // groups
        if groups == 1:
            weight = self.weight.reshape(per_in, per_out * kernel).t()  # [out * kernel, in], a view
            if choice == ConvKernel.COLUMNS.value:  # each item's frames times the weight
                cols = torch.matmul(weight, x)  # [batch, out * kernel, n]
            else:
                # one 2-D product for the whole batch: the weights are read once, not once per item
                frames = x.transpose(1, 2).reshape(batch * n, per_in)
                cols = self.matmul.forward(frames, weight, None, choice, self.rows_per_block)
                cols = cols.view(batch, n, per_out * kernel).transpose(1, 2)  # [batch, out * kernel, n]
            if n == 1 and self.dilation == 1:
                return cols.reshape(batch, self.out_channels, kernel)  # one frame: its taps are the output
        else:
            xs = x.reshape(batch, groups, per_in, n).permute(1, 0, 3, 2).reshape(groups, batch * n, per_in)
            y = torch.bmm(xs, self.weight.reshape(groups, per_in, per_out * kernel))
            cols = y.view(groups, batch, n, per_out * kernel).permute(1, 0, 3, 2)
            cols = cols.reshape(batch, self.out_channels * kernel, n)
        length = (n - 1) * self.stride + self.span
        full = F.fold(cols, [1, length], [1, kernel], [1, self.dilation], [0, 0], [1, self.stride])
        return full.view(batch, self.out_channels, length)

    tunable_matmul = True

    def offline(self, x: Tensor) -> Tensor:
        return F.conv_transpose1d(
            x, self.weight, self.bias, self.stride, self.padding, self.output_padding, self.groups, self.dilation
        )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, output_padding={self.output_padding}, dilation={self.dilation}, "
            f"groups={self.groups}, delay={self.delay}"
        )


# TorchScript reads attribute types from the class annotations, and cannot parse postponed (string) ones
ConvTranspose1d.__annotations__["kernel_table"] = Dict[int, int]
