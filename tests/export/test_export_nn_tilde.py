"""nn~ TorchScript export: the contract, the metadata, exactness in a fresh process, the refusals."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from export_models import PowerOfTwoAutoencoder, build
from plain_models import HiFiGANGenerator, TinyAutoencoder
from torch import nn

import streamify
from streamify import StreamingError
from streamify.convert import convert
from streamify.exactness import stream_signal
from streamify.export import describe_file, export_nn_tilde, read_info
from streamify.layers.base import WARMUP_STATE, StreamingModule

METHODS = ("encode", "decode", "forward")


def _example() -> torch.Tensor:
    return torch.randn(1, 1, 512, generator=torch.Generator().manual_seed(3))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.set_num_threads(1)
    model = build(PowerOfTwoAutoencoder)
    path = tmp_path_factory.mktemp("nn_tilde") / "ae.ts"
    info = export_nn_tilde(model, path, _example(), methods=METHODS, sample_rate=48000)
    return model, path, info


def _python_stream(model, method, x, n):
    """The Python streaming output of ``model.method`` over ``x`` in buffers of ``n`` frames (fresh stream)."""
    example = _example() if method != "decode" else model.encode(_example()).detach()
    stream = convert(model, example, method=method)
    return stream_signal(stream, x, [n] * (x.size(-1) // n))


def test_file_follows_the_nn_tilde_contract(exported):
    model, path, info = exported
    loaded = torch.jit.load(str(path))
    assert loaded.get_methods() == list(METHODS)
    params = {m: getattr(loaded, f"{m}_params").tolist() for m in METHODS}
    assert params == {"encode": [1, 1, 4, 8], "decode": [4, 8, 1, 1], "forward": [1, 1, 1, 1]}
    assert loaded.get_attributes() == ["reset", "reset_item"]
    assert loaded.reset_params.tolist() == [0] and loaded.reset_item_params.tolist() == [1]  # bool, int
    assert loaded.get_reset() is False and loaded.get_reset_item() == -1
    assert loaded.set_reset(True) == 0 and loaded.set_reset_item(0) == 0 and loaded.set_reset_item(-3) == -1
    loaded.set_sample_rate(44100)
    assert loaded.sr == 44100 and loaded.get_sample_rate() == 48000
    assert loaded.forward_input_labels == ["(signal) input 0"]
    # shapes nn~ uses: [batch, in_ch, n / in_ratio] -> [batch, out_ch, n / out_ratio]
    n = 4096
    with torch.inference_mode():
        assert loaded.encode(torch.zeros(2, 1, n)).shape == (2, 4, n // 8)
        assert loaded.decode(torch.zeros(2, 4, n // 8)).shape == (2, 1, n)
        assert loaded.forward(torch.zeros(1, 1, n)).dtype == torch.float32


def test_file_carries_delays_rate_and_version(exported):
    model, path, info = exported
    loaded = torch.jit.load(str(path))
    flat = loaded.get_streamify_info()
    assert flat["streamify_version"] == streamify.__version__
    assert flat["sample_rate"] == "48000"
    assert flat["methods"] == "encode,decode,forward"
    for method in METHODS:
        stream = convert(model, _example() if method != "decode" else model.encode(_example()).detach(), method=method)
        out_ratio = int(flat[f"{method}.out_ratio"])
        assert int(flat[f"{method}.delay_frames"]) == stream.delay
        assert int(flat[f"{method}.delay_samples"]) == stream.delay * out_ratio
        assert flat[f"{method}.checked_buffer_sizes"] == "256,512,1024,2048,4096,8192"
    # the same metadata as JSON in the file's extra files, readable without running the model
    assert read_info(path) == json.loads(json.dumps(info))
    assert read_info(path)["methods"]["forward"]["delay_ms"] == pytest.approx(
        1000 * info["methods"]["forward"]["delay_samples"] / 48000, abs=1e-3
    )
    assert describe_file(path).row_count == 3


def test_file_is_saved_fresh(exported):
    _, path, _ = exported
    loaded = torch.jit.load(str(path))
    for name, module in loaded.named_modules():
        if hasattr(module, "stream_batch"):
            assert module.stream_batch == 0, name
    # every state buffer any streaming layer class declares, and the warm-up positions
    declared = set(WARMUP_STATE)
    classes = [StreamingModule]
    while classes:
        cls = classes.pop()
        declared.update(cls._state_buffers)
        classes += cls.__subclasses__()
    checked = 0
    for name, module in loaded.named_modules():
        if hasattr(module, "stream_batch"):
            for buffer_name, buffer in module.named_buffers(recurse=False):
                if buffer_name in declared:
                    checked += 1
                    assert buffer.size(0) == 0, f"{name}.{buffer_name} holds state from the export checks"
    assert checked > 10, "the file's streaming layers and their state buffers were found"


def test_fresh_process_reproduces_the_python_stream_exactly(exported, tmp_path):
    model, path, _ = exported
    n = 512
    x = torch.randn(2, 1, 8 * n, generator=torch.Generator().manual_seed(7))
    z = model.encode(x).detach()
    torch.save({"x": x, "z": z}, tmp_path / "inputs.pt")
    script = textwrap.dedent(
        f"""
        import torch
        model = torch.jit.load({str(path)!r})
        inputs = torch.load({str(tmp_path / "inputs.pt")!r})
        out = {{}}
        with torch.inference_mode():
            for method, signal, frames in (("forward", inputs["x"], {n}), ("encode", inputs["x"], {n}),
                                           ("decode", inputs["z"], {n // 8})):
                chunks = [getattr(model, method)(signal[..., i:i + frames]) for i in range(0, signal.size(-1), frames)]
                out[method] = torch.cat(chunks, -1)
        torch.save(out, {str(tmp_path / "outputs.pt")!r})
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)
    outputs = torch.load(tmp_path / "outputs.pt")
    assert torch.equal(outputs["forward"], _python_stream(model, "forward", x, n))
    assert torch.equal(outputs["encode"], _python_stream(model, "encode", x, n))
    assert torch.equal(outputs["decode"], _python_stream(model, "decode", z, n // 8))
    # and the stream is the offline output shifted by the delay (a fresh stream starts with `delay` zeros)
    delay = read_info(path)["methods"]["forward"]["delay_frames"]
    offline = model(x).detach()
    assert torch.all(outputs["forward"][..., :delay] == 0)
    error = (outputs["forward"][..., delay:] - offline[..., : x.size(-1) - delay]).abs().max()
    assert error <= 1e-5 * offline.abs().max()


def test_host_resets_batch_items_and_batch_changes(exported):
    model, path, _ = exported
    loaded = torch.jit.load(str(path))
    n = 256
    x = torch.randn(2, 1, 6 * n, generator=torch.Generator().manual_seed(11))
    with torch.inference_mode():
        full = torch.cat([loaded.forward(x[..., i : i + n]) for i in range(0, 6 * n, n)], -1)
        loaded.reset_streams()
        first = torch.cat([loaded.forward(x[..., i : i + n]) for i in range(0, 3 * n, n)], -1)
        assert torch.equal(first, full[..., : 3 * n])
        # `set reset_item 1` (mc.nn~ channel 1): item 1 restarts, item 0 goes on
        assert loaded.set_reset_item(1) == 0
        rest = torch.cat([loaded.forward(x[..., i : i + n]) for i in range(3 * n, 6 * n, n)], -1)
        assert torch.equal(rest[:1], full[:1, :, 3 * n :])
        loaded.reset_streams()
        fresh = torch.cat([loaded.forward(x[1:, :, i : i + n]) for i in range(3 * n, 6 * n, n)], -1)
        torch.testing.assert_close(rest[1:], fresh, rtol=0, atol=1e-6)  # batch 2 vs 1: rounding only
        # `set reset 1`: every stream restarts at its next buffer
        loaded.reset_streams()
        loaded.forward(x[..., :n])
        assert loaded.set_reset(True) == 0
        assert torch.equal(loaded.forward(x[..., :n]), full[..., :n])
        # a host that changes the batch size (mc.nn~ channels) gets a fresh stream, not an error
        torch.testing.assert_close(loaded.forward(x[1:, :, :n]), full[1:, :, :n], rtol=0, atol=1e-6)


def test_decode_takes_encode_output_at_its_rate_and_examples_override(tmp_path):
    model = build(PowerOfTwoAutoencoder)
    z = model.encode(_example()).detach()
    info = export_nn_tilde(model, tmp_path / "dec.ts", _example(), methods=("decode",), examples={"decode": (z, 8)})
    assert info["methods"]["decode"]["in_ratio"] == 8 and info["methods"]["decode"]["out_ratio"] == 1
    # a vocoder takes mel frames: without a given ratio, the smallest whole out_ratio (1) sets in_ratio 8
    generator = build(HiFiGANGenerator)
    info = export_nn_tilde(generator, tmp_path / "voc.ts", torch.randn(1, 8, 64), sample_rate=22050)
    fields = info["methods"]["forward"]
    assert (fields["in_channels"], fields["in_ratio"], fields["out_channels"], fields["out_ratio"]) == (8, 8, 1, 1)


def test_refuses_rates_no_power_of_two_divides_and_buffers_any_multiple(tmp_path):
    path = tmp_path / "tiny.ts"
    # strides 2 and 3: one latent frame per 6 samples, which no nn~ buffer size holds a whole number of
    with pytest.raises(StreamingError, match=r"method 'encode'.*one output frame per 6 audio samples.*powers of two"):
        export_nn_tilde(build(TinyAutoencoder), path, torch.randn(1, 1, 240), methods=("encode",))
    assert not path.exists()
    # its forward (audio in, audio out) takes every size: accumulation up to 6 samples adds 6 - gcd(n, 6) = 4
    info = export_nn_tilde(build(TinyAutoencoder), path, torch.randn(1, 1, 240), methods=("forward",))
    fields = info["methods"]["forward"]
    assert fields["buffer_multiple_samples"] == 6 and fields["checked_buffer_sizes"][0] == 256
    assert set(fields["buffering_latency_samples"].values()) == {4}


def test_refuses_float64_models_and_reserved_names(tmp_path):
    model = build(PowerOfTwoAutoencoder).double()
    with pytest.raises(StreamingError, match="float64.*model.float()"):
        export_nn_tilde(model, tmp_path / "a.ts", _example())

    class Clash(nn.Module):
        def get_methods(self, x):
            return x

    with pytest.raises(StreamingError, match="'get_methods' clashes"):
        export_nn_tilde(Clash(), tmp_path / "b.ts", _example(), methods=("get_methods",))
    with pytest.raises(StreamingError, match="method 'decode' accepts none"):
        export_nn_tilde(build(PowerOfTwoAutoencoder), tmp_path / "c.ts", _example(), methods=("decode",))


class _ReflectNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 4, 9)
        self.down = nn.Conv1d(4, 1, 4, stride=2, padding=1)
        self.up = nn.ConvTranspose1d(1, 1, 4, 2, 1)

    def forward(self, x):
        return self.up(self.down(torch.tanh(self.conv(F.pad(x, (4, 4), mode="reflect")))))


def test_reflect_padding_differs_only_at_the_start_and_is_recorded(tmp_path):
    info = export_nn_tilde(build(_ReflectNet), tmp_path / "r.ts", _example())
    fields = info["methods"]["forward"]
    assert 0 < fields["start_differs_frames"] < 64 and fields["max_rel_error"] <= 1e-5


def test_a_streaming_model_exports_as_it_is_and_stays_untouched(tmp_path):
    model = build(PowerOfTwoAutoencoder)
    stream = convert(model, _example())
    x = torch.randn(1, 1, 256)
    before = stream_signal(stream, x, [256])
    state = stream.cache_bytes
    info = export_nn_tilde(stream, tmp_path / "s.ts", _example())
    assert info["methods"]["forward"]["delay_frames"] == stream.delay
    assert stream.cache_bytes == state, "the caller's stream keeps its state"
    loaded = torch.jit.load(str(tmp_path / "s.ts"))
    with torch.inference_mode():
        assert torch.equal(loaded.forward(x), before)


def _tables(loaded) -> dict:
    """Each conv's products table in a loaded TorchScript file, by qualified name (non-empty ones only)."""
    tables = {}
    for name, module in loaded.named_modules():
        if hasattr(module, "kernel_table") and hasattr(module, "fast_path_rows"):
            table = dict(module.kernel_table)
            if table:
                tables[name] = table
    return tables


def test_tuned_export_carries_the_choices_and_streams_as_the_untuned_file(tmp_path, keep_tuned_tables):
    torch.set_num_threads(1)
    model = build(PowerOfTwoAutoencoder)
    plain, tuned = tmp_path / "plain.ts", tmp_path / "tuned.ts"
    export_nn_tilde(model, plain, _example(), methods=("encode", "decode"))
    export_nn_tilde(
        model, tuned, _example(), methods=("encode", "decode"), tune_buffers=[512, 4096], tune_batches=[1, 2]
    )
    assert _tables(torch.jit.load(str(plain))) == {}
    tables = _tables(torch.jit.load(str(tuned)))
    assert tables, "the tuned file holds no tuned conv"
    # encode sees 512 and 4096 samples, decode 512 / 8 and 4096 / 8 latent frames, at batch 1 and 2
    assert all(len(table) >= 2 for table in tables.values())
    x = torch.randn(2, 1, 8 * 512, generator=torch.Generator().manual_seed(5))
    outputs = []
    for path in (plain, tuned):
        loaded = torch.jit.load(str(path))
        with torch.inference_mode():
            z = torch.cat([loaded.encode(x[..., i : i + 512]) for i in range(0, x.size(-1), 512)], -1)
            y = torch.cat([loaded.decode(z[..., i : i + 64]) for i in range(0, z.size(-1), 64)], -1)
        outputs.append((z, y))
    for a, b in zip(outputs[0], outputs[1]):
        assert (a - b).abs().max().item() <= 1e-5 * max(a.abs().max().item(), 1e-12)


def test_tuning_refuses_buffer_sizes_a_method_does_not_accept(tmp_path):
    model = build(PowerOfTwoAutoencoder)
    with pytest.raises(StreamingError, match="accepts none of the buffer sizes \\[4\\]"):
        export_nn_tilde(model, tmp_path / "x.ts", _example(), methods=("encode",), tune_buffers=[4])
    assert not (tmp_path / "x.ts").exists()
