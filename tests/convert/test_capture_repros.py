"""Real code captured as written (issue "Conversion you can trust"): each case converts exactly, or is
refused for its true reason, naming the layer and the source line.

Models from cached_conv's own layers (caching off, the default: how the paper's family of models is
trained) convert exactly: ``cc.Conv1d`` pads inside its ``forward`` before a ``padding=0`` conv, so it
must be traced into, not taken for ``nn.Conv1d``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import assert_streams_exactly
from streamify import StreamingError
from streamify.convert import convert
from streamify.exactness import stream_signal

cc = pytest.importorskip("cached_conv")

TOL = 1e-10


def _double(model: nn.Module, channels: int, frames: int, **kwargs):
    torch.manual_seed(0)
    model = model.double().eval()
    return convert(model, torch.randn(1, channels, frames, dtype=torch.float64), **kwargs)


# ---------------------------------------------------------------------------- cached_conv, caching off


def test_cached_conv_conv1d_reports_its_true_delay_and_is_exact():
    stream = _double(nn.Sequential(cc.Conv1d(16, 96, 7, padding=(3, 3))), 16, 64)
    assert stream.delay == 3
    assert assert_streams_exactly(stream, 16, frames=128).max_abs_error <= TOL


class CcResidual(nn.Module):
    """A RAVE-style residual stack of cached_conv layers: dilated convs, a strided conv, a transposed conv."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = cc.Conv1d(2, 8, 7, padding=cc.get_padding(7))
        self.res = nn.ModuleList(
            nn.Sequential(nn.LeakyReLU(0.2), cc.Conv1d(8, 8, 3, dilation=d, padding=cc.get_padding(3, dilation=d)))
            for d in (1, 3, 9)
        )
        self.down = cc.Conv1d(8, 16, 8, stride=4, padding=cc.get_padding(8, 4))
        self.up = cc.ConvTranspose1d(16, 8, 8, stride=4, padding=2)
        self.out = cc.Conv1d(8, 2, 3, padding=cc.get_padding(3, mode="causal"))

    def forward(self, x):
        x = self.inp(x)
        for block in self.res:
            x = x + block(x)
        return self.out(self.up(self.down(x)))


def test_cached_conv_residual_model_is_exact():
    stream = _double(CcResidual(), 2, 256)
    assert stream.buffer_multiple == 4
    assert assert_streams_exactly(stream, 2, frames=512).max_abs_error <= TOL


class CcBranched(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.branches = cc.AlignBranches(
            cc.Conv1d(2, 4, 3, padding=cc.get_padding(3)),
            nn.Sequential(cc.Conv1d(2, 4, 5, padding=cc.get_padding(5, mode="causal")), nn.Tanh()),
            nn.Identity(),
            delays=[0, 0, 0],  # cached_conv's bookkeeping for its own cached mode; unused with caching off
        )

    def forward(self, x):
        a, b, c = self.branches(x)
        return torch.cat([a + b, c], 1)


def test_cached_conv_branches_are_exact():
    stream = _double(CcBranched(), 2, 64)
    assert stream.delay == 1  # the centred 3-tap conv looks one frame ahead; the causal branch none
    assert assert_streams_exactly(stream, 2, frames=128).max_abs_error <= TOL


# ---------------------------------------------------------------------------- Python that a proxy cannot run


class Expand(nn.Module):
    """Anti-aliased activations: a buffer filter expanded to the channel count read from the shape."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(3, 3, 3, padding=1)
        self.register_buffer("filter", torch.randn(1, 1, 5))

    def forward(self, x):
        x = self.conv(x)
        channels = x.shape[1]
        return F.conv1d(x, self.filter.expand(channels, -1, -1), padding=2, groups=channels)


class CropsToReference(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(3, 3, 5)

    def forward(self, x):
        y = self.conv(x)
        reference = x
        length = reference.shape[-1] if isinstance(reference, torch.Tensor) else reference
        delta = length - y.shape[-1]
        if delta < 0:
            raise ValueError("the reference is shorter")
        return x[..., delta // 2 : delta // 2 + y.shape[-1]] + y


class ShapeTensors(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(3, 3, 3, padding=1)

    def forward(self, x):
        shape = torch.tensor(x.shape)
        channels = torch.as_tensor(x.shape[1])
        return self.conv(x) * (shape[1] / channels)


class BufferWeight(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("k", torch.randn(3, 1, 5))

    def forward(self, x):
        y = F.conv1d(x, self.k, groups=3, padding=2)
        if y.shape[1] > 1:
            y = y * 2
        return y


class FourD(nn.Module):
    """A 4-D product that needs a delay line (the padded conv lags the raw input)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(3, 3, 3, padding=1)

    def forward(self, x):
        return (x.unsqueeze(1) * self.conv(x).unsqueeze(1)).flatten(1, 2)


@pytest.mark.parametrize(
    "cls, delay",
    [(Expand, 3), (CropsToReference, 4), (ShapeTensors, 1), (BufferWeight, 2), (FourD, 1)],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
def test_real_python_converts_exactly(cls, delay):
    stream = _double(cls(), 3, 64)
    assert stream.delay == delay
    assert assert_streams_exactly(stream, 3, frames=128).max_abs_error <= TOL


# ---------------------------------------------------------------------------- true reasons


class LengthTensor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(3, 3, 3, padding=1)

    def forward(self, x):
        return self.conv(x) / torch.as_tensor(x.shape[-1])


class SubclassedAttention(nn.MultiheadAttention):
    pass


class Attends(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.att = SubclassedAttention(3, 1)

    def forward(self, x):
        q = x.permute(2, 0, 1)
        return self.att(q, q, q)[0].permute(1, 2, 0)


class DownUp(nn.Module):
    def __init__(self, output_padding: int = 0) -> None:
        super().__init__()
        self.down = nn.Conv1d(3, 3, 6, stride=4, padding=1)
        self.up = nn.ConvTranspose1d(3, 3, 6, stride=4, padding=1, output_padding=output_padding)

    def forward(self, x):
        return x + self.up(self.down(x))


class LinearOverTime(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(64, 64)

    def forward(self, x):
        return self.lin(x)


@pytest.mark.parametrize(
    "model, frames, reason",
    [
        (LengthTensor(), 64, r"tensor made from the signal's length .*use only constants"),
        (Attends(), 64, r"layer 'att' \(.*SubclassedAttention\) .*whole time axis \(attention\)"),
        (DownUp(), 1030, r"example length 1030 is not a multiple of the model's total stride 4.* e\.g\. 10(24|28|32)"),
        (DownUp(output_padding=2), 1030, r"fails on a signal of \(2, 3, 2060\).*not a multiple of .* stride 4"),
        (
            nn.Sequential(nn.Conv1d(3, 3, 1), nn.Linear(64, 64)),
            64,
            r"layer '1' \(.*Linear\) \(called by Sequential 'the model'\).*over the time axis",
        ),
        (LinearOverTime(), 64, r"layer 'lin' .*linear map over the time axis.*Apply it over channels"),
    ],
    ids=["length-tensor", "attention-subclass", "example-length", "probe-length", "sequential-linear", "linear"],
)
def test_refused_for_the_true_reason(model, frames, reason):
    with pytest.raises(StreamingError, match=reason) as info:
        convert(model, torch.randn(1, 3, frames))
    if not isinstance(model, nn.Sequential):  # a Sequential has no line of the user's code: its path is named
        assert "test_capture_repros.py" in str(info.value), "the user's source line is named"


# ---------------------------------------------------------------------------- patterns periodic in time


def reverse_half(x):
    """acids-rave's PQMF (``rave/pqmf.py``): alternate the sign of every other frame of every other band."""
    mask = torch.ones_like(x)
    mask[..., 1::2, ::2] = -1
    return x * mask


class PqmfAnalysis(nn.Module):
    """RAVE's non-polyphase PQMF analysis: a strided conv filterbank, then ``reverse_half``."""

    def __init__(self, bands: int = 4) -> None:
        super().__init__()
        self.bank = nn.Conv1d(1, bands, 4 * bands, stride=bands, padding=2 * bands, bias=False)

    def forward(self, x):
        return reverse_half(self.bank(x))


class PqmfSynthesisInput(nn.Module):
    """``reverse_half`` first (RAVE's inverse PQMF), on a stream delayed by nothing, then a conv."""

    def __init__(self, bands: int = 4) -> None:
        super().__init__()
        self.pre = nn.Conv1d(bands, bands, 3, padding=1)
        self.bank = nn.Conv1d(bands, 2, 5, padding=2)

    def forward(self, x):
        return self.bank(reverse_half(self.pre(x)) + x)


@pytest.mark.parametrize("cls, channels, frames", [(PqmfAnalysis, 1, 256), (PqmfSynthesisInput, 4, 64)])
def test_periodic_sign_mask_streams_in_phase(cls, channels, frames):
    stream = _double(cls(), channels, frames)
    assert "Periodic" in [type(layer).__name__ for layer in stream.layers]
    # irregular buffers, odd sizes included: the mask's phase must follow the offline frame index
    assert assert_streams_exactly(stream, channels, frames=4 * frames).max_abs_error <= TOL
    scripted = torch.jit.script(stream)  # the phase counter is TorchScript state like any cache
    x = torch.randn(2, channels, 2 * frames, dtype=torch.float64)
    sizes = [stream.buffer_multiple, 3 * stream.buffer_multiple, 2 * frames - 4 * stream.buffer_multiple]
    stream.reset()
    scripted.reset()
    assert torch.equal(stream_signal(scripted, x, sizes), stream_signal(stream, x, sizes))


class WindowedStart(nn.Module):
    """A mask that is not periodic: it silences the first frames of the signal only."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(3, 3, 3, padding=1)

    def forward(self, x):
        mask = torch.ones_like(x)
        mask[..., :5] = 0
        return self.conv(x) * mask


def test_a_mask_that_is_not_periodic_is_refused():
    with pytest.raises(StreamingError, match=r"made from its shape that is not periodic along time") as info:
        convert(WindowedStart(), torch.randn(1, 3, 64))
    assert "mask[..., :5] = 0" in str(info.value)


class RunningSum(nn.Module):
    def forward(self, x):
        return torch.cumsum(x, -1)


def test_a_refused_op_names_the_layer_that_made_it_and_its_line():
    model = nn.Sequential(nn.Conv1d(2, 2, 3, padding=1), RunningSum())
    with pytest.raises(StreamingError) as info:
        convert(model, torch.randn(1, 2, 32))
    message = str(info.value)
    assert "cumsum in layer '1' (test_capture_repros.RunningSum)" in message, message
    assert "return torch.cumsum(x, -1)" in message and "over the time axis" in message


def test_a_container_refuses_a_conv_subclass_with_its_own_forward():
    """streamify.layers.Sequential cannot trace: it must not take cc.Conv1d for nn.Conv1d (its pad would be lost)."""
    from streamify.layers import Sequential

    with pytest.raises(StreamingError, match=r"cached_conv.convs.Conv1d is a subclass of a torch time layer"):
        Sequential(cc.Conv1d(2, 2, 3, padding=(1, 1)))
