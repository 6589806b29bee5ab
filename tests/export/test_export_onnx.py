"""ONNX export with explicit state: ONNX Runtime reproduces the PyTorch stream from the first buffer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from export_models import GruPoolNet, LstmNet, PoolNet, PowerOfTwoAutoencoder, ResidualDelayNet, build
from plain_models import CroppedStack, HiFiGANGenerator, TinyAutoencoder

import streamify
from streamify import StreamingError
from streamify.convert import convert
from streamify.models.demo import build_demo_autoencoder

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from streamify.export import OnnxStream, export_onnx  # noqa: E402
from streamify.export.onnx_export import describe_onnx, read_onnx_info  # noqa: E402

#: the issue's bar: ONNX Runtime against the PyTorch streaming model, relative to the output's peak
REL_TOL = 1e-5

MODELS = {
    "conv_autoencoder": (PowerOfTwoAutoencoder, (1, 1, 512), "forward"),
    "autoencoder_odd_strides": (TinyAutoencoder, (1, 1, 480), "forward"),
    "hifigan_generator": (HiFiGANGenerator, (1, 8, 64), "forward"),
    "residual_delay": (ResidualDelayNet, (1, 2, 256), "forward"),
    "cropped_stack": (CroppedStack, (1, 1, 300), "forward"),
    "lstm": (LstmNet, (1, 1, 256), "forward"),
    "gru_maxpool": (GruPoolNet, (1, 2, 256), "forward"),
    "maxpool": (PoolNet, (1, 1, 256), "forward"),
    "streamify_layers_demo": (build_demo_autoencoder, (1, 1, 512), "forward"),
}


def _schedule(multiple: int) -> list[int]:
    """Many consecutive buffers of varying lengths (multiples of ``multiple``), past every warm-up."""
    unit = multiple * -(-4 // multiple)  # at least 4 frames: 624 frames in all, at least
    return [unit * k for k in (1, 3, 2, 8, 1, 5, 16, 4, 1, 2, 32, 7, 3, 1, 64, 6)]


def _compare(onnx_stream, torch_stream, x, sizes):
    got, expected = [], []
    start = 0
    with torch.no_grad():
        for size in sizes:
            chunk = x[..., start : start + size]
            got.append(onnx_stream(chunk))
            expected.append(torch_stream(chunk))
            start += size
    got, expected = torch.cat(got, -1), torch.cat(expected, -1)
    return got, expected, float((got - expected).abs().max() / expected.abs().max())


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx")
    cache = {}

    def get(name):
        if name not in cache:
            factory, shape, method = MODELS[name]
            model = build(factory)
            example = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
            torch.set_num_threads(1)
            path = folder / f"{name}.onnx"
            info = export_onnx(model, path, example, method=method, sample_rate=16000)
            cache[name] = (model, example, path, info)
        return cache[name]

    return get


@pytest.mark.parametrize("name", list(MODELS))
def test_onnx_stream_matches_pytorch_stream(exported, name):
    model, example, path, info = exported(name)
    stream = convert(model, example)
    runner = OnnxStream(path)
    assert runner.delay == stream.delay and runner.buffer_multiple == stream.buffer_multiple
    assert info["buffer_size"] is None, "the buffer length is dynamic"
    sizes = _schedule(stream.buffer_multiple)
    x = torch.randn(2, example.size(1), sum(sizes), generator=torch.Generator().manual_seed(5))
    got, expected, error = _compare(runner, stream, x, sizes)
    assert got.shape == expected.shape and got.dtype == torch.float32
    assert error <= REL_TOL, f"{name}: relative error {error:.3g}"
    # from the very first buffer: the warm-up (delay zeros, masked pads, skipped recurrence) is in the graph
    first = sizes[0]
    head = (got[..., :first] - expected[..., :first]).abs().max()
    assert head <= REL_TOL * expected.abs().max()
    if stream.delay > 0:
        assert torch.all(got[..., : min(stream.delay, got.size(-1))] == 0)


def test_graph_inputs_outputs_and_dynamic_axes(exported):
    _, _, path, info = exported("lstm")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = [o.name for o in session.get_outputs()]
    states = info["states"]
    assert list(inputs) == ["x"] + [s["input"] for s in states]
    assert outputs == ["y"] + [s["output"] for s in states]
    assert inputs["x"].shape == ["batch", 1, "frames"] and inputs["x"].type == "tensor(float)"
    for state in states:
        shape = inputs[state["input"]].shape
        assert shape[state["batch_axis"]] == "batch"
    buffers = {(s["layer"].split(":")[-1], s["buffer"]) for s in states}
    assert ("LSTM", "hidden") in buffers and ("LSTM", "cell") in buffers and ("LSTM", "warm_pos") in buffers
    assert any(s["buffer"] == "out_warm_pos" for s in states), "the root's output warm-up is state too"
    assert describe_onnx(path).row_count == len(states)


def test_state_initialisation_is_documented_in_the_metadata(exported):
    _, _, path, info = exported("gru_maxpool")
    states = info["states"]
    fills = {(s["layer"], s["buffer"]): s.get("fill", "init") for s in states}
    assert fills[("pool:MaxPool1d", "cache")] == "-inf", "max-pool caches start at -inf"
    # a pool fed a stream that starts before the signal: its cache holds -inf and the zeros of the pad
    assert fills[("pool_in:MaxPool1d", "cache")] == "init"
    assert all(fill == 0.0 for key, fill in fills.items() if key[1] in ("warm_pos", "out_warm_pos", "hidden"))
    runner = OnnxStream(path)
    fresh = runner.initial_state(3)
    entry = next(s for s in states if s["layer"] == "pool_in:MaxPool1d")
    value = fresh[entry["input"]]
    assert value.shape[0] == 3 and value.dtype == np.float32
    assert np.isneginf(value).any() and (value == 0).any()


def test_raw_onnxruntime_loop_following_the_documented_protocol(exported):
    """A host in any language: initialise the state from the metadata, feed state in, take next_state out."""
    model, example, path, info = exported("residual_delay")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map["streamify"]
    assert '"states"' in meta
    batch = 2
    state = {}
    for s in info["states"]:
        shape = list(s["shape"])
        shape[s["batch_axis"]] = s["batch_factor"] * batch
        state[s["input"]] = np.full(shape, float(s["fill"]), dtype=s["dtype"])
    n = 4 * info["buffer_multiple"]
    x = torch.randn(batch, example.size(1), 10 * n, generator=torch.Generator().manual_seed(2))
    outputs = []
    for start in range(0, x.size(-1), n):
        result = session.run(None, {"x": x[..., start : start + n].numpy(), **state})
        outputs.append(result[0])
        state = {s["input"]: value for s, value in zip(info["states"], result[1:])}
    stream = convert(model, example)
    expected = torch.cat([stream(x[..., i : i + n]) for i in range(0, x.size(-1), n)], -1)
    got = torch.from_numpy(np.concatenate(outputs, -1))
    assert (got - expected).abs().max() <= REL_TOL * expected.abs().max()


def test_reset_whole_and_batch_items_like_pytorch(exported):
    model, example, path, _ = exported("lstm")
    stream = convert(model, example)
    runner = OnnxStream(path)
    m = stream.buffer_multiple
    x = torch.randn(3, 1, 40 * m, generator=torch.Generator().manual_seed(9))
    first, _, _ = _compare(runner, stream, x[..., : 20 * m], [4 * m] * 5)
    state = runner.state()
    assert list(state) == [s["input"] for s in runner.states_spec] and all(v.shape[0] == 3 for v in state.values())
    runner.reset([1])
    stream.reset([1])
    got, expected, error = _compare(runner, stream, x[..., 20 * m :], [4 * m] * 5)
    assert error <= REL_TOL
    # item 1 restarted: it equals a fresh stream on the second half
    fresh = OnnxStream(path)
    again = torch.cat([fresh(x[1:2, :, i : i + 4 * m]) for i in range(20 * m, 40 * m, 4 * m)], -1)
    assert (got[1:2] - again).abs().max() <= 1e-6
    runner.reset()
    assert runner.state() == {}
    restart = runner(x[:2, :, : 4 * m])  # another batch size after a full reset
    assert (restart - first[:2, :, : restart.size(-1)]).abs().max() <= 1e-6
    with pytest.raises(StreamingError, match="batch size changed"):
        runner(x[..., : 4 * m])
    with pytest.raises(StreamingError, match="reset index 5"):
        runner.reset([5])


def test_per_item_reset_restores_a_state_that_does_not_start_at_zero(exported):
    model, example, path, info = exported("maxpool")
    assert any(entry.get("fill") == "-inf" for entry in info["states"])  # the pool's cache starts at -inf
    runner = OnnxStream(path)
    n = 64
    x = torch.randn(2, 1, 8 * n, generator=torch.Generator().manual_seed(5))
    whole = torch.cat([runner(x[..., i : i + n]) for i in range(0, 8 * n, n)], -1)
    runner.reset()
    y = [runner(x[..., i : i + n]) for i in range(0, 4 * n, n)]
    runner.reset([1])
    y += [runner(x[..., i : i + n]) for i in range(4 * n, 8 * n, n)]
    y = torch.cat(y, -1)
    assert torch.equal(y[:1], whole[:1])
    fresh = OnnxStream(path)
    again = torch.cat([fresh(x[1:, :, i : i + n]) for i in range(4 * n, 8 * n, n)], -1)
    assert (y[1:, :, 4 * n :] - again).abs().max() <= 1e-6
    assert not torch.allclose(y[1:, :, 4 * n :], whole[1:, :, 4 * n :])  # the reset did something


def test_onnx_stream_refuses_bad_buffers_and_takes_numpy(exported):
    _, _, path, info = exported("conv_autoencoder")
    runner = OnnxStream(path)
    m = info["buffer_multiple"]
    with pytest.raises(StreamingError, match="buffer length 3 is not accepted"):
        runner(np.zeros((1, 1, 3), np.float32))
    with pytest.raises(StreamingError, match="float32"):
        runner(np.zeros((1, 1, m)))
    with pytest.raises(StreamingError, match=r"\[batch, 1, n\]"):
        runner(np.zeros((1, 2, m), np.float32))
    y = runner(np.zeros((1, 1, 4 * m), np.float32))
    assert isinstance(y, np.ndarray) and y.shape == (1, 1, 4 * m)


def test_fixed_buffer_size_and_decode_method(tmp_path):
    model = build(PowerOfTwoAutoencoder)
    example = torch.randn(1, 1, 512, generator=torch.Generator().manual_seed(4))
    z = model.encode(example).detach()
    path = tmp_path / "decode.onnx"
    info = export_onnx(model, path, example, method="decode", example_input=z, buffer_size=16)
    assert info["buffer_size"] == 16 and info["in_channels"] == 4 and info["ratio"] == [1, 8]
    assert read_onnx_info(path)["out_ratio"] == 1 and info["in_ratio"] == 8
    runner = OnnxStream(path)
    with pytest.raises(StreamingError, match="exactly 16"):
        runner(torch.zeros(1, 4, 32))
    stream = convert(model, z, method="decode")
    latents = torch.randn(2, 4, 16 * 12, generator=torch.Generator().manual_seed(6))
    _, _, error = _compare(runner, stream, latents, [16] * 12)
    assert error <= REL_TOL
    with pytest.raises(StreamingError, match="not a positive multiple"):
        export_onnx(model, tmp_path / "bad.onnx", example, buffer_size=12)


def test_a_streaming_model_exports_as_it_is(tmp_path):
    model = build(ResidualDelayNet)
    example = torch.randn(1, 2, 256, generator=torch.Generator().manual_seed(1))
    stream, reference = convert(model, example), convert(model, example)
    x = torch.randn(1, 2, 128, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        first = stream(x[..., :64])
        reference(x[..., :64])
        info = export_onnx(stream, tmp_path / "s.onnx", example)
        assert torch.equal(stream(x[..., 64:]), reference(x[..., 64:])), "the caller's stream goes on untouched"
    assert info["delay_frames"] == stream.delay
    runner = OnnxStream(tmp_path / "s.onnx")
    assert (runner(x[..., :64]) - first).abs().max() <= REL_TOL * first.abs().max()


class _ProjectedLstmNet(torch.nn.Module):
    """An LSTM with proj_size behind a look-ahead conv: ONNX's LSTM operator has no projection."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = torch.nn.Conv1d(1, 4, 3, padding=1)
        self.lstm = torch.nn.LSTM(4, 6, proj_size=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.lstm(self.inp(x).permute(2, 0, 1))
        return y.permute(1, 2, 0)


def test_an_lstm_with_projection_is_refused_and_writes_nothing(tmp_path):
    model = _ProjectedLstmNet().eval()
    example = torch.randn(1, 1, 64, generator=torch.Generator().manual_seed(1))
    path = tmp_path / "projected.onnx"
    with pytest.raises(StreamingError, match=r"export_onnx: .*LSTM with proj_size.*use an LSTM without projection"):
        export_onnx(model, path, example)
    assert not path.exists()
    # the explicit-state step that the export traces refuses it too (eager users), naming the layer
    stream = convert(model, example)
    state = streamify.initial_state(stream, batch=1)
    with pytest.raises(StreamingError, match=r"LSTM.*proj_size has no explicit-state step"):
        streamify.step(stream, example, state)
