"""Window ops made streamable by cached padding: 1-D convolution and pooling.

Offline, such an op pads its input by ``(left, right)`` frames and slides a window
of ``span = dilation * (kernel - 1) + 1`` frames with a stride. Streaming, it keeps
the last ``cache`` input frames of the previous call instead of padding, computes
the windows without padding, and emits ``n / stride`` frames per call of ``n``
frames. The cache length also sets the decimation phase, so that a strided op
keeps to the offline sample grid whatever the delay of the stream that feeds it
(see :func:`streamify.timing.strided_cache`).
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from streamify.layers.base import StreamingError, StreamingModule
from streamify.layers.conv_kernels import ConvKernel, TorchMatmul, add_bias, block_rows, choose_kernel
from streamify.timing import effective_kernel, strided_cache

Padding = Union[int, Tuple[int, int], str]
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")

#: a conv whose call computes at most this many windows (batch items x output frames) computes them as
#: one matrix product (a layer's ``fast_path_rows``, 0 to turn it off); larger calls use ``F.conv1d``
FAST_PATH_MAX_ROWS = 128
#: the same bound for transposed convs (batch items x input frames); larger calls use ``F.conv_transpose1d``
FAST_PATH_MAX_ROWS_TRANSPOSED = 64


def resolve_padding(padding: Padding, span: int, where: str) -> Tuple[int, int]:
    """Turn ``int``, ``(left, right)``, ``'same'`` or ``'valid'`` into ``(left, right)`` frames.

    ``'same'`` splits ``span - 1`` frames as PyTorch does (the extra frame on the right).
    """
    if isinstance(padding, str):
        if padding == "same":
            left = (span - 1) // 2
            return left, span - 1 - left
        if padding == "valid":
            return 0, 0
        raise StreamingError(
            f"streamify: {where}: padding {padding!r} is not one of int, (left, right), 'same', 'valid'"
        )
    if isinstance(padding, int):
        left, right = padding, padding
    else:
        left, right = (int(p) for p in padding)
    if left < 0 or right < 0:
        raise StreamingError(
            f"streamify: {where}: padding ({left}, {right}) must not be negative; crop with streamify.layers.Crop"
        )
    return left, right


class WindowOp(StreamingModule):
    """Common streaming logic of convolutions and pools (see the module docstring).

    State: ``cache`` ``[batch, in_channels, cache_len]`` input frames.
    """

    _state_buffers = ("cache",)
    takes_early_stream = True  # the cache stands for the offline frames an early stream lacks

    def __init__(self, kernel_size: int, stride: int, dilation: int, padding: Padding, channels: int) -> None:
        super().__init__()
        for label, value in (("kernel_size", kernel_size), ("stride", stride), ("dilation", dilation)):
            if int(value) < 1:
                raise StreamingError(f"streamify: {self.layer_name}: {label} must be >= 1, got {value}")
        self.kernel_size = int(kernel_size)
        self.stride = int(stride)
        self.dilation = int(dilation)
        self.span = effective_kernel(self.kernel_size, self.dilation)
        self.pad_left, self.pad_right = resolve_padding(padding, self.span, self.layer_name)
        self.in_channels = channels
        self.cache_len = 0
        self.register_buffer("cache", torch.zeros(0, max(channels, 0), 0), persistent=False)
        self._set_ratio(self.stride)
        self.buffer_multiple = self.stride
        self.receptive_field = self.span
        self._configure()
        self._release_state()  # the empty cache of a fresh stream has its length (state checks read it)

    def _configure(self) -> None:
        self.cache_len, self.delay = strided_cache(self.span, self.stride, self.pad_left, self.input_delay)

    def _allocate(self, x: Tensor) -> None:
        self.cache = torch.full((x.size(0), x.size(1), self.cache_len), self.pad_value, dtype=x.dtype, device=x.device)
        self._fill_missing(None)

    def _fill_missing(self, index: Optional[Tensor]) -> None:
        """Zero the cache frames that stand for input frames a stream ahead of offline never holds.

        After a (zero) Pad the stream lacks the first ``-input_delay`` offline input frames: the
        last cache frames stand for them, and they hold zeros, not this op's own padding value
        (which differs for max pooling).
        """
        missing = min(max(-self.input_delay, 0), self.cache_len)
        if missing > 0 and self.pad_value != 0.0:
            tail = self.cache.narrow(2, self.cache_len - missing, missing)
            if index is None:
                tail.fill_(0.0)
            else:
                tail.index_fill_(0, index, 0.0)

    def _release_state(self) -> None:
        self.cache = torch.zeros(
            0, self.cache.size(1), self.cache_len, dtype=self.cache.dtype, device=self.cache.device
        )

    def _reset_items(self, index: Tensor) -> None:
        self.cache.index_fill_(0, index, self.pad_value)
        self._fill_missing(index)

    def stream(self, x: Tensor) -> Tensor:
        return self._window(self._windows_input(x))

    def _windows_input(self, x: Tensor) -> Tensor:
        """The cached frames and buffer ``x`` ``[batch, channels, n]`` that this call's windows read; updates the cache."""
        if self.warm_left > 0 or self.explicit_state:  # the warm-up frames (see StreamingModule._mask_input)
            x = self._mask_input(x)
        n = x.size(-1)
        if self.cache_len > 0:
            z = torch.cat([self.cache, x], -1)
            self.cache = z.narrow(2, n, self.cache_len).detach()  # no autograd graph across calls
        else:
            z = x
        # the windows of the n / stride frames this call emits; later frames of z only feed the cache
        used = (n // self.stride - 1) * self.stride + self.span
        if z.size(-1) > used:
            z = z.narrow(2, 0, used)
        return z

    def _window(self, z: Tensor) -> Tensor:
        """The op without padding over ``z`` ``[batch, channels, frames]`` (subclasses)."""
        raise NotImplementedError


class Conv1d(WindowOp):
    """Streaming 1-D convolution; same arguments as :class:`torch.nn.Conv1d`.

    ``padding`` may also be ``(left, right)``. Padding modes other than zeros differ from
    offline only at the start of a stream.

    Shape:
        input ``[batch, in_channels, n]``, ``n`` a multiple of ``stride`` (``buffer_multiple``);
        output ``[batch, out_channels, n / stride]``, ``delay`` frames behind the offline output.

    Buffers of 8 frames stream what the offline conv computes, 1 frame later:

    >>> import torch
    >>> from streamify.layers import Conv1d
    >>> conv = Conv1d(1, 4, kernel_size=3, padding=1)
    >>> conv.delay, conv.buffer_multiple
    (1, 1)
    >>> x = torch.randn(1, 1, 16)
    >>> y = torch.cat([conv(x[..., :8]), conv(x[..., 8:])], -1)
    >>> y.shape
    torch.Size([1, 4, 16])
    >>> torch.allclose(y[..., 1:], conv.offline(x)[..., :-1], atol=1e-6)
    True
    >>> Conv1d(1, 4, kernel_size=4, stride=2, padding=1)(torch.randn(1, 1, 8)).shape
    torch.Size([1, 4, 4])
    """

    #: rows per call (batch x frames) -> kernel, a ConvKernel value (:mod:`streamify.layers.conv_kernels`); see :func:`streamify.tune`
    kernel_table: Dict[int, int]

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: Padding = 0,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Optional[torch.device] = None,
        dtype: Optional[torch.dtype] = None,
    ) -> None:
        reference = nn.Conv1d(
            in_channels, out_channels, kernel_size, groups=groups, bias=bias, device=device, dtype=dtype
        )
        self._init_from(reference.weight, reference.bias, stride, padding, dilation, groups, padding_mode)

    @classmethod
    def from_torch(cls, conv: nn.Conv1d, padding: Optional[Padding] = None) -> Conv1d:
        """A streaming copy of ``conv`` (its weights cloned); ``padding`` overrides the conv's own."""
        if isinstance(conv.padding, str):
            conv_padding: Padding = conv.padding
        else:
            conv_padding = int(conv.padding[0])
        module = cls.__new__(cls)
        bias = None if conv.bias is None else conv.bias.detach().clone()
        module._init_from(
            conv.weight.detach().clone(),
            bias,
            int(conv.stride[0]),
            conv_padding if padding is None else padding,
            int(conv.dilation[0]),
            conv.groups,
            conv.padding_mode,
        )
        return module

    def _init_from(
        self,
        weight: Tensor,
        bias: Optional[Tensor],
        stride: int,
        padding: Padding,
        dilation: int,
        groups: int,
        padding_mode: str,
    ) -> None:
        super().__init__(weight.size(-1), stride, dilation, padding, weight.size(1) * groups)
        if padding_mode not in PADDING_MODES:
            raise StreamingError(
                f"streamify: {self.layer_name}: padding_mode {padding_mode!r} is not one of {PADDING_MODES}"
            )
        self.padding_mode = padding_mode
        self.groups = groups
        self.out_channels = weight.size(0)
        self.weight = nn.Parameter(weight)
        self.bias = None if bias is None else nn.Parameter(bias)
        self.dtype_marker = torch.zeros(0, dtype=weight.dtype, device=weight.device)
        #: untuned calls of at most this many windows (batch x frames) take a matrix product (0: never)
        self.fast_path_rows = FAST_PATH_MAX_ROWS
        self.kernel_table: Dict[int, int] = {}
        #: weight rows per block of the blocked product (:func:`streamify.layers.conv_kernels.block_rows`)
        self.rows_per_block = block_rows(self.out_channels // groups, weight.size(1) * self.kernel_size)
        #: runs the matrix products (:class:`~streamify.layers.conv_kernels.TorchMatmul`, or the native ones)
        self.matmul: nn.Module = TorchMatmul()

    def _window(self, z: Tensor) -> Tensor:
        frames = (z.size(-1) - self.span) // self.stride + 1
        rows = frames * z.size(0)
        choice = choose_kernel(self.kernel_table, rows, self.fast_path_rows, self.weight_blocks())
        if choice == ConvKernel.GENERIC.value or torch.jit.is_tracing():
            return F.conv1d(z, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return self._window_matmul(z, frames, choice)

    def weight_blocks(self) -> int:
        """Blocks of ``rows_per_block`` rows in the weight matrix (1 for grouped convs: they have one product)."""
        if self.groups > 1:
            return 1
        return self.out_channels // self.rows_per_block

    def _window_matmul(self, z: Tensor, frames: int, choice: int) -> Tensor:
        """``F.conv1d`` without padding over ``z`` as one matrix product over its ``frames`` windows.

        Few frames per call make PyTorch's generic kernels slow (im2col loops, per-channel
        dilated loops, weight re-layouts); gathering the windows ``[batch * frames, in * kernel]``
        and multiplying them by the weight viewed as ``[out, in * kernel]`` reads each weight
        once, by the kernel ``choice`` (:mod:`streamify.layers.conv_kernels`). The weight is viewed per call,
        never copied, so weights trained or loaded later are used as they are.
        """
        batch, channels = z.size(0), z.size(1)
        kernel, out_channels = self.kernel_size, self.out_channels
        # the taps of every window read in place (one strided view: window f, tap j is frame
        # f * stride + j * dilation), copied once into the product's rows
        strides = z.stride()
        step = strides[2]
        if choice == ConvKernel.COLUMNS.value and self.groups == 1:
            columns = z.as_strided(
                [batch, channels, kernel, frames],
                [strides[0], strides[1], self.dilation * step, self.stride * step],
                z.storage_offset(),
            ).reshape(batch, channels * kernel, frames)
            y = torch.matmul(self.weight.reshape(out_channels, channels * kernel), columns)
            bias = self.bias
            return add_bias(y, None if bias is None else bias.unsqueeze(-1))
        if self.groups > 1:
            windows = z.as_strided(
                [batch, channels, frames, kernel],
                [strides[0], strides[1], self.stride * step, self.dilation * step],
                z.storage_offset(),
            )
            return self._grouped_matmul(windows, frames)
        windows = z.as_strided(
            [batch, frames, channels, kernel],
            [strides[0], self.stride * step, strides[1], self.dilation * step],
            z.storage_offset(),
        )
        cols = windows.reshape(batch * frames, channels * kernel)
        weight = self.weight.reshape(out_channels, channels * kernel)
        y = self.matmul.forward(cols, weight, self.bias, choice, self.rows_per_block)
        return y.view(batch, frames, out_channels).transpose(1, 2)

    def _grouped_matmul(self, windows: Tensor, frames: int) -> Tensor:
        """Grouped convs: one batched product over the groups; ``windows`` ``[batch, in, frames, kernel]``."""
        batch, channels = windows.size(0), windows.size(1)
        groups, kernel = self.groups, self.kernel_size
        out_channels = self.out_channels
        per_in, per_out = channels // groups, out_channels // groups
        cols = (
            windows.reshape(batch, groups, per_in, frames, kernel)
            .permute(1, 0, 3, 2, 4)
            .reshape(groups, batch * frames, per_in * kernel)
        )
        weight = self.weight.reshape(groups, per_out, per_in * kernel).transpose(1, 2)
        bias = self.bias
        if bias is not None:
            y = torch.baddbmm(bias.view(groups, 1, per_out), cols, weight)
        else:
            y = torch.bmm(cols, weight)  # [groups, batch * frames, per_out]
        return y.view(groups, batch, frames, per_out).permute(1, 0, 3, 2).reshape(batch, out_channels, frames)

    tunable_matmul = True

    def pad_with_zeros(self) -> bool:
        switched = self.padding_mode != "zeros"
        self.padding_mode = "zeros"
        return switched

    def offline(self, x: Tensor) -> Tensor:
        mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
        x = F.pad(x, [self.pad_left, self.pad_right], mode=mode)
        return F.conv1d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding=({self.pad_left}, {self.pad_right}), dilation={self.dilation}, groups={self.groups}, "
            f"delay={self.delay}, cache={self.cache_len}"
        )


# TorchScript reads attribute types from the class annotations, and cannot parse postponed (string) ones
Conv1d.__annotations__["kernel_table"] = Dict[int, int]


class AvgPool1d(WindowOp):
    """Streaming average pooling; same arguments as :class:`torch.nn.AvgPool1d`.

    With ``count_include_pad=False`` only the start of a stream differs from offline.

    Shape:
        input ``[batch, channels, n]``, ``n`` a multiple of ``stride``; output
        ``[batch, channels, n / stride]``, ``delay`` frames behind the offline output.

    >>> import torch
    >>> from streamify.layers import AvgPool1d
    >>> pool = AvgPool1d(4, stride=2, padding=1)
    >>> x = torch.randn(1, 3, 16)
    >>> y = torch.cat([pool(x[..., :8]), pool(x[..., 8:])], -1)
    >>> y.shape, pool.delay
    (torch.Size([1, 3, 8]), 1)
    >>> torch.allclose(y[..., 1:], pool.offline(x)[..., :-1], atol=1e-6)
    True
    """

    def __init__(
        self,
        kernel_size: int,
        stride: Optional[int] = None,
        padding: int = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ) -> None:
        super().__init__(kernel_size, kernel_size if stride is None else stride, 1, padding, -1)
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad

    def starts_exact(self) -> bool:
        return self.count_include_pad  # else the first windows divide by fewer frames than a stream's

    def _window(self, z: Tensor) -> Tensor:
        return F.avg_pool1d(z, self.kernel_size, self.stride, 0)

    def offline(self, x: Tensor) -> Tensor:
        if self.pad_left == self.pad_right:
            return F.avg_pool1d(x, self.kernel_size, self.stride, self.pad_left, self.ceil_mode, self.count_include_pad)
        return F.avg_pool1d(F.pad(x, [self.pad_left, self.pad_right]), self.kernel_size, self.stride, 0, self.ceil_mode)


class MaxPool1d(WindowOp):
    """Streaming max pooling; same arguments as :class:`torch.nn.MaxPool1d` (padding counts as -inf).

    Shape:
        input ``[batch, channels, n]``, ``n`` a multiple of ``stride``; output
        ``[batch, channels, n / stride]``, ``delay`` frames behind the offline output.

    >>> import torch
    >>> from streamify.layers import MaxPool1d
    >>> pool = MaxPool1d(3, stride=1, padding=1)
    >>> x = torch.randn(1, 3, 16)
    >>> y = torch.cat([pool(x[..., :8]), pool(x[..., 8:])], -1)
    >>> y.shape, pool.delay
    (torch.Size([1, 3, 16]), 1)
    >>> torch.equal(y[..., 1:], pool.offline(x)[..., :-1])
    True
    """

    def __init__(
        self,
        kernel_size: int,
        stride: Optional[int] = None,
        padding: Padding = 0,
        dilation: int = 1,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__(kernel_size, kernel_size if stride is None else stride, dilation, padding, -1)
        self.ceil_mode = ceil_mode
        self.pad_value = float("-inf")

    def _window(self, z: Tensor) -> Tensor:
        return F.max_pool1d(z, self.kernel_size, self.stride, 0, self.dilation)

    def offline(self, x: Tensor) -> Tensor:
        x = F.pad(x, [self.pad_left, self.pad_right], value=float("-inf"))
        return F.max_pool1d(x, self.kernel_size, self.stride, 0, self.dilation, self.ceil_mode)
