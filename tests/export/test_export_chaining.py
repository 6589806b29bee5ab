"""``encode -> decode`` chained as a patch chains two nn~ objects equals ``forward`` from its first output sample.

``decode`` receives silence first (the host's buffering, then ``encode``'s warm-up frames) and
the latents after; the file's ``decode`` waits for the first latent frame that is not all zeros
(``streamify/export/chaining.py``), so the chain plays silence, then exactly the offline
``decode(encode(x))``, delayed by both methods' latencies and the host's.
"""

from __future__ import annotations

import pytest
import torch
from export_models import PowerOfTwoAutoencoder, build

from streamify.export import export_nn_tilde, read_info

RATIO = 8  # PowerOfTwoAutoencoder: one latent frame per 8 samples


@pytest.fixture(scope="module")
def model_and_file(tmp_path_factory):
    torch.set_num_threads(1)
    model = build(PowerOfTwoAutoencoder)
    path = tmp_path_factory.mktemp("chain") / "ae.ts"
    example = torch.randn(1, 1, 512, generator=torch.Generator().manual_seed(0))
    export_nn_tilde(model, path, example, methods=("encode", "decode", "forward"))
    return model, path


def _stream(method, x: torch.Tensor, frames: int) -> torch.Tensor:
    with torch.inference_mode():
        return torch.cat([method(x[..., i : i + frames]) for i in range(0, x.size(-1), frames)], -1)


@pytest.mark.parametrize("buffer, host_frames", [(64, 0), (256, 3), (4096, 5), (96, 2)])
def test_encode_then_decode_equals_forward_from_the_first_sample(model_and_file, buffer, host_frames):
    model, path = model_and_file
    encoder, decoder = torch.jit.load(str(path)), torch.jit.load(str(path))  # two nn~ objects, one file
    x = torch.randn(1, 1, 8192, generator=torch.Generator().manual_seed(1))
    z = _stream(encoder.encode, x, buffer)
    # the host's own latency reaches decode as silent latent frames before encode's output
    z = torch.cat([torch.zeros(1, z.size(1), host_frames), z], -1)
    y = _stream(decoder.decode, z, buffer // RATIO)
    methods = read_info(path)["methods"]
    delay = host_frames * RATIO + methods["encode"]["delay_samples"] + methods["decode"]["delay_samples"]
    with torch.no_grad():
        offline = model(x)
    assert torch.equal(y[..., :delay], torch.zeros_like(y[..., :delay]))  # silence: no burst before the signal
    torch.testing.assert_close(y[..., delay:], offline[..., : y.size(-1) - delay], rtol=0, atol=2e-6)


def test_each_batch_item_starts_at_its_own_signal_and_a_reset_waits_again(model_and_file):
    model, path = model_and_file
    loaded = torch.jit.load(str(path))
    z = torch.randn(2, 4, 64, generator=torch.Generator().manual_seed(2))
    z[1, :, :5] = 0.0  # item 1's signal starts 5 frames later
    y = _stream(loaded.decode, z, 8)
    decoder_delay = read_info(path)["methods"]["decode"]["delay_samples"]
    with torch.no_grad():
        offline = [model.decode(z[:1]), model.decode(z[1:, :, 5:])]
    for item, (silent, expected) in enumerate(zip((0, 5), offline)):
        delay = silent * RATIO + decoder_delay
        assert torch.equal(y[item, :, :delay], torch.zeros_like(y[item, :, :delay]))
        torch.testing.assert_close(y[item, :, delay:], expected[0, :, : y.size(-1) - delay], rtol=0, atol=2e-6)
    loaded.set_reset(True)
    again = _stream(loaded.decode, torch.cat([torch.zeros(2, 4, 3), z[:, :, :8]], -1), 11)
    assert torch.equal(again[..., : 3 * RATIO], torch.zeros_like(again[..., : 3 * RATIO]))
