"""What an exported file costs a host at load: its size, and what TorchScript compiles when it loads.

A file of ``encode``, ``decode`` and ``forward`` holds each weight once (the three streams share
them), and a method's graph holds no layer's computation: each layer is one call through an
interface, compiled once per layer type (``streamify/export/dispatch.py``). Checked on the file's
structure, not by timing (the load times are in ``docs/benchmarks.md``).
"""

from __future__ import annotations

import zipfile

import pytest
import torch
from torch import nn

from streamify.export import export_nn_tilde, read_info

METHODS = ("encode", "decode", "forward")


class WideAutoencoder(nn.Module):
    """encode / decode / forward, ratio 8, wide enough (50 k weights) that the weights dominate the file."""

    def __init__(self, width: int = 64, latent: int = 16) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv1d(1, width, 7, padding=3), nn.ELU(), nn.Conv1d(width, width, 4, stride=2, padding=1), nn.ELU(),
            nn.Conv1d(width, latent, 8, stride=4, padding=2),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.ConvTranspose1d(latent, width, 8, 4, 2), nn.ELU(), nn.ConvTranspose1d(width, width, 4, 2, 1), nn.ELU(),
            nn.Conv1d(width, 1, 5, padding=2),
        )  # fmt: skip

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.decoder(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


@pytest.fixture(scope="module")
def model_and_file(tmp_path_factory):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = WideAutoencoder().eval()
    path = tmp_path_factory.mktemp("footprint") / "ae.ts"
    example = torch.randn(1, 1, 512, generator=torch.Generator().manual_seed(0))
    export_nn_tilde(model, path, example, methods=METHODS)
    return model, path


def _tensor_bytes(path) -> int:
    """Bytes of tensor data in a TorchScript archive (its ``data/`` records: one per storage)."""
    with zipfile.ZipFile(path) as archive:
        return sum(item.file_size for item in archive.infolist() if "/data/" in item.filename)


def _walk(block):
    for node in block.nodes():
        yield node
        for inner in node.blocks():
            yield from _walk(inner)


def test_a_file_of_three_methods_holds_each_weight_once(model_and_file):
    model, path = model_and_file
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    # forward holds the encoder's and the decoder's weights, encode and decode each one half again:
    # without sharing the file holds 2x the weights
    assert weights > 100_000
    assert _tensor_bytes(path) <= weights * 1.01 + 4096


def test_the_shared_weights_are_used_by_every_method(model_and_file):
    model, path = model_and_file
    loaded = torch.jit.load(str(path))
    x = torch.randn(1, 1, 4096, generator=torch.Generator().manual_seed(1))
    latents = torch.randn(1, 16, 512, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        z = loaded.encode(x)
        y = loaded.forward(x)
        decoded = loaded.decode(latents)
    with torch.no_grad():
        offline_z, offline_y, offline_decoded = model.encode(x), model(x), model.decode(latents)
    methods = read_info(path)["methods"]
    delay_z = int(methods["encode"]["delay_samples"]) // 8
    delay_y = int(methods["forward"]["delay_samples"])
    delay_d = int(methods["decode"]["delay_samples"])
    torch.testing.assert_close(z[..., delay_z:], offline_z[..., : z.size(-1) - delay_z], rtol=0, atol=1e-5)
    torch.testing.assert_close(y[..., delay_y:], offline_y[..., : y.size(-1) - delay_y], rtol=0, atol=1e-5)
    torch.testing.assert_close(
        decoded[..., delay_d:], offline_decoded[..., : decoded.size(-1) - delay_d], rtol=0, atol=1e-5
    )


def test_each_layer_is_a_call_compiled_once_per_layer_type(model_and_file):
    _, path = model_and_file
    loaded = torch.jit.load(str(path))
    for index in range(len(METHODS)):
        # the model's advance: what the file's methods reach through the buffering stream (forward validates first)
        graph = getattr(loaded, f"stream_{index}").stream.advance.graph.copy()
        torch._C._jit_pass_inline(graph)  # what the graph executor does before it optimises
        nodes = list(_walk(graph))
        kinds = {node.kind() for node in nodes}
        assert not kinds & {"aten::conv1d", "aten::_convolution", "aten::conv_transpose1d"}, METHODS[index]
        # every layer is a call: no layer's validation, masks or offline branch is copied into the method's graph
        calls = [node for node in nodes if node.kind() == "prim::CallMethod"]
        assert calls and all("LayerInterface" in str(next(node.inputs()).type()) for node in calls)
