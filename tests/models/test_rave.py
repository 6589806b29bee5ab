"""The RAVE-style model: interface, PQMF, and exact streaming of every method through streamify.convert."""

from __future__ import annotations

from typing import Dict, List

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import streamify
from streamify.convert import convert
from streamify.exactness import compare_streamed, stream_signal
from streamify.loading import load_model
from streamify.models import RAVE, load_checkpoint, rave, save_weights
from streamify.models.pqmf import PQMFAnalysis, PQMFSynthesis
from streamify.models.presets import SMALL, V2

#: the small preset, shrunk for speed where only the architecture matters
TINY = SMALL.scaled(name="small", capacity=8, latent=4)


def _model(config=SMALL, causal: bool = False, noise: bool = False, seed: int = 0) -> RAVE:
    torch.manual_seed(seed)
    model = rave(config, causal=causal).to(torch.float64).eval()
    model.use_noise = noise
    return model


def _signal(length: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(length, dtype=torch.float64) / 22050
    tone = 0.3 * torch.sin(2 * torch.pi * 330 * t) * torch.sin(2 * torch.pi * 3 * t)
    return (tone + 0.05 * torch.randn(length, generator=generator, dtype=torch.float64)).view(1, 1, -1)


@pytest.fixture(scope="module")
def small() -> RAVE:
    return _model()


@pytest.fixture(scope="module")
def streams(small: RAVE) -> Dict[str, streamify.StreamingModel]:
    x = _signal(small.ratio * 24)
    z = torch.randn(1, small.latent_size, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    return {
        "forward": convert(small, x, method="forward"),
        "encode": convert(small, x, method="encode"),
        "decode": convert(small, z, method="decode"),
    }


def test_interface(small: RAVE) -> None:
    assert (small.sample_rate, small.ratio, small.latent_size) == (22050, 512, 16)
    assert rave().use_noise is True
    x = _signal(small.ratio * 6)
    with torch.no_grad():
        z = small.encode(x)
        assert z.shape == (1, small.latent_size, 6)
        assert small.decode(z).shape == x.shape
        assert torch.equal(small(x), small.decode(z))  # forward: through the posterior mean
    trainable = sum(p.numel() for p in rave("small").parameters() if p.requires_grad)
    assert 0.5e6 < trainable < 3e6


def test_v2_has_the_published_size() -> None:
    model = rave("v2")
    assert (model.sample_rate, model.ratio, model.latent_size) == (48000, 2048, 128)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert 31.0e6 < trainable < 32.0e6


def test_unknown_preset_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown RAVE preset"):
        rave("large")


@pytest.mark.parametrize("bands,taps", [(16, 256), (8, 128)])
def test_pqmf_reconstructs_and_keeps_energy(bands: int, taps: int) -> None:
    analysis = PQMFAnalysis(bands, taps).double()
    synthesis = PQMFSynthesis(bands, taps).double()
    x = torch.randn(1, 1, bands * 512, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        split = analysis(x)
        y = synthesis(split)
    assert split.shape == (1, bands, 512)
    inner = slice(2 * taps, -2 * taps)
    error = (y - x)[..., inner].square().mean() / x[..., inner].square().mean()
    assert 10 * torch.log10(error) < -50  # better than 50 dB reconstruction
    assert abs(split.square().sum() / x.square().sum() - 1) < 0.01


@pytest.mark.parametrize("method", ["forward", "encode", "decode"])
def test_small_streams_exactly(small: RAVE, streams, method: str) -> None:
    stream = streams[method]
    stream.reset()
    if method == "decode":
        x = torch.randn(1, small.latent_size, 40, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
        sizes = [1, 3, 8, 2, 26]
    else:
        x = _signal(small.ratio * 40, seed=3)
        sizes = [512, 1536, 4096, 512 * 5, 512 * 23]
    streamed = stream_signal(stream, x, sizes)
    with torch.no_grad():
        offline = getattr(small, method)(x)
    comparison = compare_streamed(streamed, offline, stream.delay, warmup=0)
    assert comparison.compared_frames > offline.size(-1) // 2
    assert comparison.max_abs_error <= 1e-10
    assert comparison.offline_scale > 1e-3


@settings(max_examples=8, deadline=None)
@given(st.lists(st.integers(1, 12), min_size=1, max_size=12))
def test_forward_streams_exactly_for_any_buffers(small: RAVE, streams, frames: List[int]) -> None:
    stream = streams["forward"]
    stream.reset()
    sizes = [f * small.ratio for f in frames + [16]]  # at least the delay (13 frames)
    x = _signal(sum(sizes), seed=len(frames))
    streamed = stream_signal(stream, x, sizes)
    with torch.no_grad():
        offline = small(x)
    assert compare_streamed(streamed, offline, stream.delay, warmup=0).max_abs_error <= 1e-10


def test_noise_is_kept_and_its_deterministic_part_streams() -> None:
    """The noise synthesizer converts without allow_random (issue 20): streamed with real draws, verified
    with the draws replaced by zeros."""
    model = _model(TINY, noise=True)
    x = _signal(model.ratio * 16)
    noisy = convert(model, x)
    assert noisy.random_kept
    streamed = stream_signal(noisy, x, [model.ratio * 4] * 4)
    with torch.no_grad():
        offline = model(x)
    assert compare_streamed(streamed, offline, noisy.delay).max_abs_error > 1e-6  # the noise is drawn
    with torch.no_grad():  # no noise amplitude: what is left is the deterministic part
        model.noise.amplitudes.conv.bias.fill_(-1e4)
        offline = model(x)
    silent = convert(model, x, allow_random=True)
    streamed = stream_signal(silent, x, [model.ratio * 4] * 4)
    assert compare_streamed(streamed, offline, silent.delay, warmup=0).max_abs_error <= 1e-10


def test_causal_variant_streams_with_no_delay() -> None:
    model = _model(TINY, causal=True)
    x = _signal(model.ratio * 16)
    for method, example in (("forward", x), ("encode", x), ("decode", torch.randn(1, 4, 16, dtype=torch.float64))):
        stream = convert(model, example, method=method)
        assert stream.delay == 0, method
        streamed = stream_signal(stream, example, [example.size(-1) // 4] * 4)
        with torch.no_grad():
            offline = getattr(model, method)(example)
        assert (streamed - offline).abs().max() <= 1e-10
    # and no look-ahead beyond the current latent frame: changing the input from a frame boundary on
    # leaves every earlier output untouched (the non-causal model's earlier outputs change)
    t = model.ratio * 10
    changed = x.clone()
    changed[..., t:] += 1.0
    with torch.no_grad():
        assert torch.equal(model(x)[..., :t], model(changed)[..., :t])
        assert not torch.equal(_model(TINY)(x)[..., :t], _model(TINY)(changed)[..., :t])


@pytest.mark.slow
def test_v2_streams_exactly() -> None:
    model = _model(V2)
    x = _signal(model.ratio * 24)
    stream = convert(model, x)
    streamed = stream_signal(stream, x, [model.ratio * 4] * 6)
    with torch.no_grad():
        offline = model(x)
    comparison = compare_streamed(streamed, offline, stream.delay, warmup=0)
    assert comparison.compared_frames > 0
    assert comparison.max_abs_error <= 1e-10


def test_weight_file_round_trip_and_load_model(tmp_path) -> None:
    torch.manual_seed(0)
    trained = rave("small", weight_norm=True)
    path = save_weights(trained, tmp_path / "w.pt")
    assert set(torch.load(path, weights_only=True)) == {"format", "preset", "causal", "state_dict"}
    loaded = load_checkpoint(path)
    assert not loaded.training and next(loaded.parameters()).dtype == torch.float32
    x = _signal(512 * 4).float()
    trained.eval()
    trained.use_noise = loaded.use_noise = False
    with torch.no_grad():
        assert torch.allclose(loaded(x), trained(x), atol=1e-6)
    via_spec = load_model(str(path))
    assert isinstance(via_spec, RAVE)


def test_bad_checkpoints_are_refused(tmp_path) -> None:
    with pytest.raises(streamify.StreamingError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.ckpt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(streamify.StreamingError, match="neither"):
        load_checkpoint(tmp_path / "other.pt")
