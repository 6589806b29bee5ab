"""acids-rave's PQMF in both directions, and its noise synthesiser's frame-local FFTs, streamed exactly
when built by hand from streaming layers: the ops that move time between axes, one by one.

* ``PQMF(polyphase=True).forward``: ``"b c (t m) -> b (c m) t"`` (:class:`SplitTime`, then a view over
  channels), a padded conv at the band rate, an end crop, the alternating-sign mask (:class:`Periodic`).
* ``CachedPQMF.inverse``: the mask, a padded conv, ``* m``, ``flip(1)``, ``permute`` / ``reshape`` that split
  the channels, and the ``reshape(B, C, T * m)`` that merges bands into time (:class:`MergeTime`).
* ``PQMF(polyphase=True).inverse``: the same merge, then a left crop of ``2 * m`` samples (delay).
* ``NoiseGeneratorV2``'s tail: per-frame impulse responses and FFT convolutions (pointwise in time), the
  frames laid end to end (:class:`MergeTime`); the noise draw is replaced by the impulse response itself.

Every offline model equals acids-rave's own code to 1e-12; every stream equals its offline model, float64,
random buffer schedules, to 1e-10, the comparison one frame off failing by far. These are the target
graphs for the converter's layout rules (``aten.view`` / ``_unsafe_view`` with ``permute``).
"""

from __future__ import annotations

import copy
import sys

import numpy
import pytest
import torch
from torch import nn

from conftest import _Stub, published_module
from helpers import assert_streams_exactly
from streamify.exactness import stream_signal
from streamify.layers import Branches, Conv1d, Crop, MergeTime, Pointwise, Sequential, SplitTime
from streamify.layers.periodic import Periodic

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.:DeprecationWarning")
RAVE_STUBS = ("torchaudio", "GPUtil", "librosa", "lmdb", "pytorch_lightning")


class Bands(nn.Module):
    """``[batch, c, m, t] -> [batch, c * m, t]``: einops' ``(c m)`` (pointwise in time)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1, 2)


class FlipBands(nn.Module):
    """``x * scale``, bands reversed, then the channels split into ``(c, m)``: ``[batch, c * m, t] -> [batch, c, m, t]``."""

    def __init__(self, scale: float, m: int) -> None:
        super().__init__()
        self.scale, self.m = scale, m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x * self.scale).flip(1)
        return x.unflatten(1, (x.size(1) // self.m, self.m))


def reverse_half(bands: int) -> Branches:
    """acids-rave's ``reverse_half``: odd bands times -1 at even time frames, as a periodic pattern."""
    period = torch.ones(bands, 2, dtype=torch.float64)
    period[1::2, 0] = -1.0
    return Branches(Pointwise(nn.Identity()), Periodic(period), merge="prod")


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    yield
    # the stand-in modules leave sys.modules once the model modules hold them (see test_published_models)
    for name in [name for name, module in sys.modules.items() if isinstance(module, _Stub)]:
        del sys.modules[name]


@pytest.fixture(scope="module")
def pqmf_module():
    """``rave.pqmf``, written for an older scipy and numpy: ``scipy.signal.kaiser`` (imported, unused) moved to
    ``scipy.signal.windows``, ``firwin``'s ``nyq=`` became ``fs=`` (``fs = 2 * nyq``) and ``kaiserord`` no longer
    takes a 1-element array; these are bridged here, the filter design itself is acids-rave's."""
    signal = pytest.importorskip("scipy.signal")
    added = not hasattr(signal, "kaiser")
    if added:
        signal.kaiser = signal.windows.kaiser
    try:
        module = published_module("rave", "pqmf", stubs=RAVE_STUBS)
    finally:
        if added:
            del signal.kaiser

    def firwin(numtaps, cutoff, *, nyq=None, **kwargs):
        if nyq is not None:
            kwargs["fs"] = 2 * nyq
        return signal.firwin(numtaps, cutoff, **kwargs)

    def kaiserord(ripple, width):  # scipy.optimize.fmin hands over a 1-element array, which numpy 2 will not int()
        return signal.kaiserord(ripple, float(numpy.asarray(width).reshape(-1)[0]))

    module.firwin, module.kaiserord = firwin, kaiserord
    return module


@pytest.mark.parametrize("bands", [2, 4, 16])
def test_polyphase_pqmf_analysis_streams_exactly(pqmf_module, bands):
    pqmf = pqmf_module.PQMF(100, bands, polyphase=True).double()
    hk = pqmf.hk  # [m, L]
    taps = hk.shape[-1] // bands
    weight = hk.reshape(bands, taps, bands).permute(0, 2, 1)  # einops "c (t m) -> c m t"
    conv = Conv1d(bands, bands, taps, padding=taps // 2, bias=False)
    conv.weight.data.copy_(weight)
    model = Sequential(SplitTime(bands), Bands(), conv, Crop(0, 1), reverse_half(bands)).double()
    x = torch.randn(2, 1, 64 * bands, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(model.offline(x), pqmf(x), rtol=0, atol=1e-12)
    assert model.ratio == bands and model.buffer_multiple == bands
    comparison = assert_streams_exactly(model, 1, frames=64 * bands)
    assert comparison.max_abs_error <= 1e-10


@pytest.mark.parametrize("bands", [2, 4, 16])
def test_cached_pqmf_inverse_streams_exactly(pqmf_module, bands):
    pqmf = pqmf_module.CachedPQMF(100, bands).double()
    source = pqmf.inverse_conv  # cached_conv's Conv1d, caching off: it pads in its own forward
    conv = Conv1d.from_torch(source, padding=tuple(source._pad))
    model = Sequential(reverse_half(bands), conv, FlipBands(bands, bands), MergeTime(bands)).double()
    x = torch.randn(2, bands, 40, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(model.offline(x), pqmf.inverse(x), rtol=0, atol=1e-12)
    assert model.ratio == 1 / torch.tensor(bands).item() and model.delay == conv.delay * bands
    assert_streams_exactly(model, bands, frames=64)


@pytest.mark.parametrize("bands", [4, 8])
def test_polyphase_pqmf_inverse_streams_exactly(pqmf_module, bands):
    pqmf = pqmf_module.PQMF(100, bands, polyphase=True).double()
    hk = pqmf.hk.flip(-1)
    taps = hk.shape[-1] // bands
    weight = hk.reshape(bands, taps, bands).permute(2, 0, 1)  # einops "c (t m) -> m c t"
    conv = Conv1d(bands, bands, taps, padding=taps // 2 + 1, bias=False)
    conv.weight.data.copy_(weight)
    model = Sequential(
        reverse_half(bands), conv, Crop(0, 1), FlipBands(bands, bands), MergeTime(bands), Crop(2 * bands)
    )
    model = model.double()
    x = torch.randn(2, bands, 40, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(model.offline(x), pqmf.inverse(x), rtol=0, atol=1e-12)
    assert_streams_exactly(model, bands, frames=64)


def test_pqmf_analysis_then_inverse_round_trip_streams_exactly(pqmf_module):
    """RAVE's two ends in one stream: analysis (time folded into bands) then the cached inverse."""
    bands = 4
    analysis = pqmf_module.PQMF(100, bands, polyphase=True).double()
    synthesis = pqmf_module.CachedPQMF(100, bands).double()
    taps = analysis.hk.shape[-1] // bands
    conv = Conv1d(bands, bands, taps, padding=taps // 2, bias=False)
    conv.weight.data.copy_(analysis.hk.reshape(bands, taps, bands).permute(0, 2, 1))
    inverse = Conv1d.from_torch(synthesis.inverse_conv, padding=tuple(synthesis.inverse_conv._pad))
    model = Sequential(
        SplitTime(bands), Bands(), conv, Crop(0, 1), reverse_half(bands),
        reverse_half(bands), inverse, FlipBands(bands, bands), MergeTime(bands),
    ).double()  # fmt: skip
    x = torch.randn(2, 1, 256, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(model.offline(x), synthesis.inverse(analysis(x)), rtol=0, atol=1e-12)
    assert model.ratio == 1
    assert_streams_exactly(model, 1, frames=512)
    # float32 (relative 1e-5 of the offline float32 output), and scripted as nn~ loads it: bit for bit as eager
    model = model.float()
    assert_streams_exactly(model, 1, frames=512, dtype=torch.float32)
    scripted = torch.jit.script(copy.deepcopy(model))
    x = x.float()
    sizes = [8, 32, 4, 64, 148]
    assert torch.equal(stream_signal(scripted, x, sizes), stream_signal(model, x, sizes))


class FrameNoise(nn.Module):
    """acids-rave's noise synthesis between the conv net and the output, noise replaced by the response itself:
    amplitudes ``[batch, c * k, t]`` to per-frame filtered frames ``[batch, c, target, t]`` (time last)."""

    def __init__(self, core, channels: int, target: int) -> None:
        super().__init__()
        self.core, self.channels, self.target = core, channels, target

    def frames(self, amp: torch.Tensor) -> torch.Tensor:
        """acids-rave's layout, ``[batch, t, c, target]``."""
        amp = amp.permute(0, 2, 1)
        amp = amp.reshape(amp.shape[0], amp.shape[1], self.channels, -1)
        ir = self.core.amp_to_impulse_response(amp, self.target)
        return self.core.fft_convolve(ir, ir)

    def forward(self, amp: torch.Tensor) -> torch.Tensor:
        return self.frames(amp).permute(0, 2, 3, 1)


def test_noise_synthesis_frame_ffts_then_frames_end_to_end(pqmf_module):
    core = published_module("rave", "core", stubs=RAVE_STUBS)
    channels, bins, target = 2, 5, 16
    amp_net = Conv1d(3, channels * bins, 3, padding=1)
    noise = FrameNoise(core, channels, target)
    model = Sequential(amp_net, nn.Sigmoid(), noise, MergeTime(target)).double()
    x = torch.randn(2, 3, 48, dtype=torch.float64)
    with torch.no_grad():  # NoiseGeneratorV2's last lines: permute(0, 2, 1, 3), reshape(B, C, -1)
        reference = noise.frames(torch.sigmoid(model.layers[0].offline(x))).permute(0, 2, 1, 3).reshape(2, channels, -1)
        assert torch.allclose(model.offline(x), reference, rtol=0, atol=1e-12)
    assert model.ratio == torch.tensor(1 / target).item()
    assert_streams_exactly(model, 3, frames=64)
