"""Streaming counterparts of ``torch.nn`` time layers, for containers and the converter."""

from __future__ import annotations

from typing import Optional

from torch import nn

from streamify.layers.base import StreamingError, StreamingModule
from streamify.layers.conv import AvgPool1d, Conv1d, MaxPool1d
from streamify.layers.conv_transpose import ConvTranspose1d
from streamify.layers.recurrent import GRU, LSTM
from streamify.layers.resample import upsample
from streamify.layers.shift import Pad

_PADS = {
    nn.ReflectionPad1d: "reflect",
    nn.ReplicationPad1d: "replicate",
    nn.ConstantPad1d: "constant",
    nn.ZeroPad1d: "constant",
    nn.CircularPad1d: "circular",
}

_WHOLE_AXIS = (nn.AdaptiveAvgPool1d, nn.AdaptiveMaxPool1d, nn.MultiheadAttention, nn.InstanceNorm1d, nn.GroupNorm)


def from_torch_layer(module: nn.Module) -> Optional[StreamingModule]:
    """The streaming copy of a ``torch.nn`` time layer, or None if ``module`` is not one.

    Raises:
        StreamingError: for a layer that reads the whole time axis (cannot stream).
    """
    name = type(module).__name__
    if isinstance(module, nn.Conv1d):
        return Conv1d.from_torch(module)
    if isinstance(module, nn.ConvTranspose1d):
        return ConvTranspose1d.from_torch(module)
    if isinstance(module, nn.AvgPool1d):
        return AvgPool1d(
            module.kernel_size[0], module.stride[0], module.padding[0], module.ceil_mode, module.count_include_pad
        )
    if isinstance(module, nn.MaxPool1d):
        if module.return_indices:
            raise StreamingError("streamify: MaxPool1d with return_indices cannot stream; drop return_indices")
        return MaxPool1d(module.kernel_size, module.stride, module.padding, module.dilation, module.ceil_mode)
    if isinstance(module, nn.Upsample):
        if module.size is not None or module.scale_factor is None:
            raise StreamingError("streamify: Upsample to a fixed size reads the signal length; give a scale_factor")
        if module.align_corners:
            raise StreamingError("streamify: Upsample with align_corners=True depends on the signal length; use False")
        scale = module.scale_factor
        scale = scale[0] if isinstance(scale, tuple) else scale
        return upsample(scale, module.mode)
    for cls, mode in _PADS.items():
        if isinstance(module, cls):
            left, right = module.padding
            value = float(getattr(module, "value", 0.0))
            return Pad(left, right, mode, value)
    if isinstance(module, nn.LSTM):
        return LSTM.from_torch(module)
    if isinstance(module, nn.GRU):
        return GRU.from_torch(module)
    if isinstance(module, _WHOLE_AXIS):
        raise StreamingError(
            f"streamify: {name} reads the whole time axis and cannot stream; replace it by a causal or "
            "windowed equivalent (e.g. a running mean, LayerNorm over channels)"
        )
    return None
