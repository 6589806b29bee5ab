"""Streaming layers: the building blocks of hand-built streaming models and the targets of conversion."""

from streamify.layers.base import StreamingError, StreamingModule
from streamify.layers.containers import Branches, Heads, Residual, Sequential, as_streaming
from streamify.layers.conv import AvgPool1d, Conv1d, MaxPool1d
from streamify.layers.conv_transpose import ConvTranspose1d
from streamify.layers.framing import Frame
from streamify.layers.istft import ISTFT
from streamify.layers.overlap_add import OverlapAddFrames
from streamify.layers.pointwise import Pointwise
from streamify.layers.recurrent import GRU, LSTM
from streamify.layers.resample import LinearUpsample, NearestUpsample, upsample
from streamify.layers.shift import Crop, Delay, Pad
from streamify.layers.stft import STFT
from streamify.layers.time_fold import MergeTime, SplitTime

__all__ = [
    "AvgPool1d",
    "Branches",
    "Conv1d",
    "ConvTranspose1d",
    "Crop",
    "Delay",
    "Frame",
    "GRU",
    "Heads",
    "ISTFT",
    "LSTM",
    "LinearUpsample",
    "MaxPool1d",
    "MergeTime",
    "NearestUpsample",
    "OverlapAddFrames",
    "Pad",
    "Pointwise",
    "Residual",
    "STFT",
    "Sequential",
    "SplitTime",
    "StreamingError",
    "StreamingModule",
    "as_streaming",
    "upsample",
]
