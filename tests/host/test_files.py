"""``streamify process`` and :func:`streamify.host.process_array`: files buffer by buffer, as a host would.

On an nn~ ``.ts`` the output is the file's method called on consecutive buffers (the last zero-padded),
sample for sample; on a factory it is the offline output delayed by the model's delay, and aligned with
``--compensate``; across formats, rates and channel counts. Bad inputs: one line, exit 2, no file.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
from host_models import small_codec, stereo_mixer
from typer.testing import CliRunner

from streamify.cli import app
from streamify.host import load_host_model, process_array

runner = CliRunner()
RATE = 48000
#: samples at the end of a compensated output that see the zeros streamed after the input
END = 2 * load_host_model("host_models:small_codec").receptive_field


def signal(channels: int, frames: int, seed: int = 0) -> np.ndarray:
    """``[channels, frames]``: a different sine plus noise per channel, -10 dB."""
    t = np.arange(frames) / RATE
    rng = np.random.default_rng(seed)
    rows = [0.25 * np.sin(2 * np.pi * 220 * (c + 1) * t) + 0.05 * rng.standard_normal(frames) for c in range(channels)]
    return np.stack(rows).astype(np.float32)


def offline(module: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """``[items, channels, time]`` through the original model, whole."""
    with torch.inference_mode():
        return module(torch.from_numpy(np.ascontiguousarray(x))).numpy()


def write(path, x: np.ndarray, rate: int = RATE, subtype: str = "FLOAT") -> None:
    sf.write(str(path), x.T, rate, subtype=subtype)


def read(path):
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return data.T, rate


def cli(*args: str):
    return runner.invoke(app, ["process", *args])


@pytest.fixture(scope="module")
def codec_ts(tmp_path_factory):
    from streamify.export import export_nn_tilde

    path = tmp_path_factory.mktemp("ts") / "codec.ts"
    export_nn_tilde(small_codec(), path, torch.randn(1, 1, 4096), sample_rate=RATE)
    return path


@pytest.mark.parametrize("channels", [1, 2])
def test_ts_equals_the_file_called_buffer_by_buffer(tmp_path, codec_ts, channels):
    x = signal(channels, 5000)  # not a whole number of buffers: the last one is padded with zeros
    write(tmp_path / "in.wav", x)
    result = cli(str(tmp_path / "in.wav"), str(tmp_path / "out.wav"), "-m", str(codec_ts), "--buffer", "512")
    assert result.exit_code == 0, result.output
    y, rate = read(tmp_path / "out.wav")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated upstream; nn~ loads nothing else
        module = torch.jit.load(str(codec_ts))
    padded = np.zeros((channels, 1, 5120), np.float32)
    padded[:, 0, :5000] = x  # channels as batch items of one stream, as mc.nn~ sends them
    with torch.inference_mode():
        calls = [module.forward(torch.from_numpy(padded[..., i : i + 512])).numpy() for i in range(0, 5120, 512)]
    expected = np.concatenate(calls, -1)[:, 0, :5000]
    assert rate == RATE and y.shape == (channels, 5000)
    np.testing.assert_array_equal(y, expected)
    assert "model latency" in result.output and "real-time factor" in result.output
    assert "slowest buffer" in result.output and "would have been late" in result.output


def test_factory_equals_offline_delayed_and_compensated(tmp_path):
    x = signal(1, 9000)
    write(tmp_path / "in.wav", x)
    model = load_host_model("host_models:small_codec")
    delay = model.delay
    assert delay > 0
    y_off = offline(small_codec(), x[None])[0]
    for flag, shift in (("--no-compensate", delay), ("--compensate", 0)):
        out = tmp_path / f"out{shift}.wav"
        result = cli(str(tmp_path / "in.wav"), str(out), "-m", "host_models:small_codec", "--buffer", "1024", flag)
        assert result.exit_code == 0, result.output
        y, _ = read(out)
        assert y.shape == x.shape
        # compensated, the last samples see the zeros after the file, not the offline model's padding
        end = 9000 - (END if not shift else 0)
        np.testing.assert_allclose(y[:, shift:end], y_off[:, : end - shift], rtol=0, atol=2e-6)
        if shift:
            np.testing.assert_array_equal(y[:, :shift], 0.0)  # a fresh stream starts with its delay


@pytest.mark.parametrize("suffix, atol", [(".flac", 2.0 / 32768), (".ogg", None)])
def test_formats(tmp_path, suffix, atol):
    x = signal(1, 8000)
    write(tmp_path / f"in{suffix}", x, subtype=None if suffix == ".ogg" else "PCM_24")
    source, _ = read(tmp_path / f"in{suffix}")
    result = cli(
        str(tmp_path / f"in{suffix}"), str(tmp_path / f"out{suffix}"), "-m", "host_models:small_codec", "--compensate"
    )
    assert result.exit_code == 0, result.output
    y, rate = read(tmp_path / f"out{suffix}")
    expected = offline(small_codec(), source[None])[0]
    assert rate == RATE and y.shape == expected.shape
    if atol is not None:  # FLAC: 16-bit output, within quantisation
        np.testing.assert_allclose(y[:, :-END], expected[:, :-END], rtol=0, atol=atol)
    else:  # Vorbis is lossy: the streamed output (checked against offline above) through the same encoder
        streamed, _ = process_array(load_host_model("host_models:small_codec"), source, 2048, compensate=True)
        np.testing.assert_allclose(streamed[:, :-END], expected[:, :-END], rtol=0, atol=2e-6)
        write(tmp_path / "expected.ogg", streamed, subtype="VORBIS")
        coded, _ = read(tmp_path / "expected.ogg")
        np.testing.assert_allclose(y, coded, rtol=0, atol=1e-4)


def test_resampled_with_soxr_and_back(tmp_path):
    x = signal(2, 44100 // 4)
    write(tmp_path / "in.wav", x, rate=44100)
    args = [str(tmp_path / "in.wav"), "-m", "host_models:small_codec", "--sample-rate", "48000", "--compensate"]
    assert cli(args[0], str(tmp_path / "at48.wav"), *args[1:], "--model-rate").exit_code == 0
    assert cli(args[0], str(tmp_path / "at44.wav"), *args[1:]).exit_code == 0  # the input's rate by default
    at48, rate48 = read(tmp_path / "at48.wav")
    at44, rate44 = read(tmp_path / "at44.wav")
    up = soxr.resample(x.T, 44100, 48000, quality="VHQ").T.astype(np.float32)
    expected48 = offline(small_codec(), up[:, None])[:, 0]
    assert rate48 == 48000 and at48.shape == expected48.shape
    np.testing.assert_allclose(at48[:, :-END], expected48[:, :-END], rtol=0, atol=2e-6)
    back = soxr.resample(at48.T, 48000, 44100, quality="VHQ").T
    assert rate44 == 44100 and at44.shape == x.shape
    np.testing.assert_allclose(at44, back, rtol=0, atol=2e-6)


def test_multichannel_model_takes_the_channels_as_its_own(tmp_path):
    x = signal(2, 4096)
    write(tmp_path / "in.wav", x)
    result = cli(str(tmp_path / "in.wav"), str(tmp_path / "out.wav"), "-m", "host_models:stereo_mixer", "--compensate")
    assert result.exit_code == 0, result.output
    y, _ = read(tmp_path / "out.wav")
    expected = offline(stereo_mixer(), x[None])[0]  # one item of 2 channels, mixed: not two batch items
    np.testing.assert_allclose(y[:, :-END], expected[:, :-END], rtol=0, atol=2e-6)


def test_onnx_equals_the_torch_stream(tmp_path):
    pytest.importorskip("onnxruntime")
    from streamify.export import export_onnx

    export_onnx(small_codec(), tmp_path / "codec.onnx", torch.randn(1, 1, 4096), sample_rate=RATE)
    x = signal(2, 6000)
    from_onnx, report = process_array(load_host_model(str(tmp_path / "codec.onnx")), x, 1024)
    from_torch, _ = process_array(load_host_model("host_models:small_codec"), x, 1024)
    np.testing.assert_allclose(from_onnx, from_torch, rtol=0, atol=1e-5)
    assert report.model_delay == load_host_model("host_models:small_codec").delay


def _one_line_exit_2(result, tmp_path, words: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and words in lines[0], result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out.wav").exists()
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_bad_inputs_one_line_exit_2_no_file(tmp_path):
    result = cli(str(tmp_path / "missing.wav"), str(tmp_path / "out.wav"), "-m", "host_models:small_codec")
    _one_line_exit_2(result, tmp_path, "does not exist")
    (tmp_path / "text.wav").write_text("not audio at all\n" * 100)
    result = cli(str(tmp_path / "text.wav"), str(tmp_path / "out.wav"), "-m", "host_models:small_codec")
    _one_line_exit_2(result, tmp_path, "cannot read")
    write(tmp_path / "three.wav", signal(3, 2048))
    result = cli(str(tmp_path / "three.wav"), str(tmp_path / "out.wav"), "-m", "host_models:stereo_mixer")
    _one_line_exit_2(result, tmp_path, "has 3 channels but the model")
    write(tmp_path / "in.wav", signal(1, 2048))
    result = cli(str(tmp_path / "in.wav"), str(tmp_path / "out.wav"), "-m", "no_such_module:factory")
    _one_line_exit_2(result, tmp_path, "cannot import")
    (tmp_path / "broken.ts").write_bytes(b"not a TorchScript archive")
    result = cli(str(tmp_path / "in.wav"), str(tmp_path / "out.wav"), "-m", str(tmp_path / "broken.ts"))
    _one_line_exit_2(result, tmp_path, "cannot load")
    result = cli(str(tmp_path / "in.wav"), str(tmp_path / "out.mp9"), "-m", "host_models:small_codec")
    _one_line_exit_2(result, tmp_path, "unknown audio format")


def test_failure_while_writing_leaves_no_partial_file(tmp_path, monkeypatch):
    import streamify.host.files as files

    def broken(*args, **kwargs):
        with open(args[0], "wb") as f:
            f.write(b"half a file")
        raise RuntimeError("disk full")

    monkeypatch.setattr(sf, "write", broken)
    write_real = files.write_audio
    with pytest.raises(files.HostError, match="disk full"):
        write_real(tmp_path / "out.wav", signal(1, 100), RATE)
    assert list(tmp_path.iterdir()) == []


def test_rates_other_than_audio_as_nn_tilde_runs_them():
    """A method at a lower output rate repeats each frame ``out_ratio`` times; a lower input rate keeps the
    last sample of each group of ``in_ratio`` (nn~'s rules)."""
    torch.manual_seed(5)
    encoder = torch.nn.Sequential(torch.nn.Conv1d(1, 2, 4, stride=4), torch.nn.Tanh()).eval()
    decoder = torch.nn.Sequential(torch.nn.ConvTranspose1d(2, 1, 4, stride=4)).eval()
    x = signal(1, 4096)
    enc = load_host_model(encoder, channels=1)
    assert (enc.in_ratio, enc.out_ratio, enc.out_channels) == (1, 4, 2)
    y, _ = process_array(enc, x, 1024)
    frames = offline(encoder, x[None])[0]  # [2, 1024]: no padding, no delay
    np.testing.assert_allclose(y, np.repeat(frames, 4, axis=-1), rtol=0, atol=2e-6)
    dec = load_host_model(decoder, channels=2)
    assert (dec.in_ratio, dec.out_ratio) == (4, 1)
    z = np.repeat(frames, 4, axis=-1)
    z[:, ::4] = 7.0  # only the last sample of each group of 4 may count
    audio, _ = process_array(dec, z, 1024)
    np.testing.assert_allclose(audio, offline(decoder, frames[None])[0], rtol=0, atol=2e-6)


def test_a_ts_is_warmed_at_load_as_nn_tilde_does_and_warming_leaves_a_fresh_stream(codec_ts):
    from streamify.host.models import ScriptModel

    model = ScriptModel(codec_ts)
    assert model.module.warmed is True  # get_methods() ran at load: the file compiled its streams there
    x = signal(1, 2048)[None]
    first = model(x)
    model.warm_up(1, 512)  # what process and live do before their first timed buffer
    np.testing.assert_array_equal(model(x), first)  # and the stream is fresh again
