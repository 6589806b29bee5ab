"""``streamify export RUN``: an acids-rave training run to an nn~ file that streams ``rave export``'s methods.

A small run of acids-rave's own v2 config is written like ``rave train`` writes one (``rave_run.py``).
The offline reference is acids-rave's own export code (``scripts/export.py``'s ``VariationalScriptedRAVE``,
non-streaming, the ``nn_tilde`` package installed with ``--no-deps``) with its random draws at their
expected value (the posterior at its mean, zeros in the cut dimensions), as the file computes.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from rave_run import write_run
from typer.testing import CliRunner

from helpers import assert_streams_exactly, skip_or_fail_in_ci
from streamify import StreamingError
from streamify.cli import app
from streamify.export import read_info

runner = CliRunner()


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        yield


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return write_run(tmp_path_factory.mktemp("rave") / "small_v2")


@pytest.fixture(scope="module")
def loaded(run):
    from streamify.models.rave_runs import load_run

    return load_run(run)


def _touch(path: Path, when: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    os.utime(path, (when, when))


def test_run_found_as_rave_export_finds_it(tmp_path):
    """The config in the checkpoint's folder or up to two above; a folder's newest checkpoint below it."""
    from streamify.models.rave_runs import find_run

    (tmp_path / "config.gin").write_text("")
    now = time.time()
    _touch(tmp_path / "version_0" / "checkpoints" / "best.ckpt", now - 100)
    _touch(tmp_path / "version_1" / "checkpoints" / "last.ckpt", now)
    assert find_run(tmp_path) == (tmp_path / "config.gin", tmp_path / "version_1" / "checkpoints" / "last.ckpt")
    best = tmp_path / "version_0" / "checkpoints" / "best.ckpt"
    assert find_run(best) == (tmp_path / "config.gin", best)
    far = tmp_path / "a" / "b" / "c" / "last.ckpt"  # config.gin three folders above: not this run's
    _touch(far, now)
    with pytest.raises(StreamingError, match=r"not in a RAVE run: no config.gin in .*give the run folder"):
        find_run(far)


def test_run_without_checkpoint_refused(tmp_path):
    from streamify.models.rave_runs import find_run

    (tmp_path / "config.gin").write_text("")
    with pytest.raises(StreamingError, match=r"holds no checkpoint \(\*\.ckpt below it\)"):
        find_run(tmp_path)


def _rave_export_reference(model):
    """acids-rave's own ``VariationalScriptedRAVE`` (scripts/export.py) of the run, not streaming."""
    if importlib.util.find_spec("nn_tilde") is None:
        skip_or_fail_in_ci("nn_tilde is not installed (pip install --no-deps nn_tilde==1.6.0)")
    grad = torch.is_grad_enabled()
    try:
        export = importlib.import_module("scripts.export")  # it turns gradients off process-wide on import
    finally:
        torch.set_grad_enabled(grad)
    return export.VariationalScriptedRAVE(pretrained=model, fidelity=0.95)


def test_methods_equal_rave_exports_offline_computation(loaded, monkeypatch):
    """encode, decode and forward of RaveMethods equal acids-rave's export of the same run, offline, with its
    random draws at their expected value (posterior mean, zeros in the cut dimensions)."""
    from streamify.export.rave_methods import RaveMethods

    methods = RaveMethods(loaded.model)
    assert (methods.latent_size, methods.full_latent_size, methods.ratio, methods.sample_rate) == (4, 8, 16, 48000)
    x = torch.randn(2, 1, 4096, generator=torch.Generator().manual_seed(3))
    monkeypatch.setattr(torch, "randn_like", torch.zeros_like)
    monkeypatch.setattr(torch, "randn", lambda *shape, **kw: torch.zeros(*shape, **{"dtype": kw.get("dtype")}))
    reference = _rave_export_reference(loaded.model)
    assert reference.latent_size == methods.latent_size
    with torch.no_grad():
        z = reference.encode(x)
        assert float(z.abs().max()) > 0
        for got, expected in [
            (methods.encode(x), z),
            (methods.decode(z), reference.decode(z)),
            (methods(x), reference.forward(x)),
        ]:
            assert got.shape == expected.shape
            assert float((got - expected).abs().max()) <= 1e-5 * float(expected.abs().max())


def _stream_of(loaded, method: str, example: torch.Tensor):
    """The method converted with its draws kept (as the export converts it), then switched to their expected
    value: a deterministic stream to compare with the offline method."""
    from streamify.convert import convert
    from streamify.export.rave import draws_off
    from streamify.export.rave_methods import NOISE_MARK, RaveMethods, set_noise_gain

    methods = RaveMethods(loaded.model).double()  # float64: the export's own path (float32 only) is not used
    set_noise_gain(methods, NOISE_MARK)
    stream = convert(methods, example, method=method, allow_random=True, verify=False)
    assert len(draws_off(stream)) >= 1
    return stream


def test_encode_streams_exactly(loaded):
    """The encode stream equals the offline encode at its delay, float64, at irregular buffer schedules."""
    stream = _stream_of(loaded, "encode", torch.randn(1, 1, 2048, dtype=torch.float64))
    assert stream.ratio == 16
    assert assert_streams_exactly(stream, 1, frames=4096).max_abs_error <= 1e-10


@pytest.mark.parametrize("method", ["decode", "forward"])
def test_decode_and_forward_stream_exactly(loaded, method):
    channels, frames = (4, 128) if method == "decode" else (1, 2048)
    stream = _stream_of(loaded, method, torch.randn(1, channels, frames, dtype=torch.float64))
    assert assert_streams_exactly(stream, channels, frames=4 * frames).max_abs_error <= 1e-10


def _exported_encode(run: Path, path: Path, *options: str) -> torch.jit.ScriptModule:
    result = runner.invoke(app, ["export", str(run), "-o", str(path), "--method", "encode", *options])
    assert result.exit_code == 0, result.output
    return torch.jit.load(str(path))


def test_export_encode_file_has_rave_exports_contract(run, tmp_path):
    """The file: RAVE's params, labels, attributes and stereo mode; latency in its metadata and in info; its
    encode at several buffer sizes equals the offline encode at the stated latency."""
    from streamify.export.rave_methods import RaveMethods
    from streamify.models.rave_runs import load_run

    path = tmp_path / "small.ts"
    module = _exported_encode(run, path, "--no-noise")
    assert module.get_methods() == ["encode"]
    assert module.get_attributes() == [
        "learn_target",
        "reset_target",
        "learn_source",
        "reset_source",
        "reset",
        "reset_item",
    ]
    assert module.encode_params.tolist() == [1, 1, 4, 16]
    assert module.encode_input_labels == ["(signal) Channel 1"]
    assert module.encode_output_labels == [f"(signal) Latent dimension {i}" for i in range(1, 5)]
    for name in ("learn_target", "reset_target", "learn_source", "reset_source"):
        assert getattr(module, f"{name}_params").tolist() == [0]
        assert getattr(module, f"set_{name}")(True) == 0 and getattr(module, f"get_{name}")() is True
    info = module.get_streamify_info()
    delay = int(info["encode.delay_samples"])
    assert read_info(path)["rave"]["posterior"] == "mean"
    assert delay > 0 and info["sample_rate"] == "48000"

    offline = RaveMethods(load_run(run).model)
    x = torch.randn(2, 1, 16 * 1024, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = offline.encode(x)
    for n in (256, 1024, 4096):  # multiples of the buffer multiple: no buffering latency
        module.reset_streams()
        with torch.inference_mode():
            y = torch.cat([module.encode(x[..., i : i + n]) for i in range(0, x.size(-1), n)], -1)
        frames = delay // 16
        assert float(y[..., :frames].abs().max()) == 0.0
        error = (y[..., frames:] - expected[..., : y.size(-1) - frames]).abs().max()
        assert float(error) <= 1e-4 * float(expected.abs().max())
        wrong = (y[..., frames + 1 :] - expected[..., : y.size(-1) - frames - 1]).abs().max()
        assert float(wrong) > 1e-2 * float(expected.abs().max())  # one frame off is caught

    def streamed(signal: torch.Tensor) -> torch.Tensor:
        module.reset_streams()
        with torch.inference_mode():
            return torch.cat([module.encode(signal[..., i : i + 2048]) for i in range(0, signal.size(-1), 2048)], -1)

    mono = streamed(x[:1])
    module.set_stereo_mode(torch.tensor(True))  # the VST sends [1, 2, n]: a mono model encodes channel 0
    assert torch.equal(streamed(torch.cat([x[:1], torch.randn_like(x[:1])], 1)), mono)
    module.set_stereo_mode(torch.tensor(False))

    shown = runner.invoke(app, ["info", str(path)], env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and f"{delay} samples" in shown.output, shown.output


def test_export_encode_samples_the_posterior_like_rave_export(run, loaded, tmp_path):
    """By default the file draws the posterior sample as rave export does: its encode minus the posterior mean's
    is the projection of std x N(0, 1), each kept dimension of variance sum_j pca_ij^2 std_j^2 per frame."""
    from streamify.export.rave_methods import RaveMethods, set_noise_gain

    path = tmp_path / "sampling.ts"
    module = _exported_encode(run, path)
    assert read_info(path)["rave"]["posterior"] == "sample"
    x = torch.randn(2, 1, 16 * 2048, generator=torch.Generator().manual_seed(7))

    def streamed() -> torch.Tensor:
        module.reset_streams()
        with torch.inference_mode():
            return torch.cat([module.encode(x[..., i : i + 2048]) for i in range(0, x.size(-1), 2048)], -1)

    torch.manual_seed(0)  # the file draws from torch's global generator: the test is repeatable
    sampled = streamed()
    listed = read_info(path)["rave"]["noise_gain_buffers"]  # the file names its gains, for every method
    buffers = dict(module.named_buffers())
    assert all(name in buffers for names in listed.values() for name in names), listed
    gains = listed["encode"]
    assert set_noise_gain(module, 0.0, gains) == len(gains) >= 1
    mean = streamed()
    methods = RaveMethods(loaded.model)
    with torch.no_grad():
        _, scale = methods.encoder(methods._analysis(x)).chunk(2, 1)
        std = torch.nn.functional.softplus(scale) + 1e-4  # [B, L, frames], offline
    kept = methods.latent_pca[: methods.latent_size]  # [L', L]
    variance = torch.einsum("il,blt->bit", kept**2, std**2)
    frames = int(module.get_streamify_info()["encode.delay_frames"])
    normalised = (sampled - mean)[..., frames:] / variance[..., : sampled.size(-1) - frames].sqrt()
    assert abs(float(normalised.mean())) < 0.1 and 0.9 < float(normalised.std()) < 1.1  # 8000 N(0, 1) draws


def test_noise_synthesizer_at_its_expected_value_equals_rave_export(tmp_path, monkeypatch):
    """A run whose config has a noise synthesizer (acids-rave's v2_small.gin): with the draws at their expected
    value (noise_gain 0) the methods equal rave export's offline code with its uniform noise at its mean (0), and
    with noise_gain 1 decode draws that noise (two runs differ)."""
    from streamify.export.rave_methods import NoiseGain, RaveMethods, set_noise_gain
    from streamify.models.rave_runs import load_run

    loaded = load_run(write_run(tmp_path / "noise", config="v2_small.gin"))
    methods = RaveMethods(loaded.model)
    assert isinstance(methods.decoder.noise_module, NoiseGain)
    z = torch.randn(2, methods.latent_size, 32, generator=torch.Generator().manual_seed(4))
    x = torch.randn(1, 1, 4096, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        assert set_noise_gain(methods, 1.0) == 2
        assert float((methods.decode(z) - methods.decode(z)).abs().max()) > 1e-6
        set_noise_gain(methods, 0.0)
        ours = methods.decode(z), methods(x)
    monkeypatch.setattr(torch, "rand_like", lambda t, **kw: torch.full_like(t, 0.5))  # uniform noise 2u - 1 at 0
    monkeypatch.setattr(torch, "randn_like", torch.zeros_like)
    monkeypatch.setattr(torch, "randn", lambda *shape, **kw: torch.zeros(*shape, **{"dtype": kw.get("dtype")}))
    reference = _rave_export_reference(loaded.model)
    with torch.no_grad():
        theirs = reference.decode(z), reference.forward(x)
    for got, expected in zip(ours, theirs):
        assert float((got - expected).abs().max()) <= 1e-5 * float(expected.abs().max())


def _streamed(call, signal: torch.Tensor, n: int) -> torch.Tensor:
    with torch.inference_mode():
        return torch.cat([call(signal[..., i : i + n]) for i in range(0, signal.size(-1), n)], -1)


def test_export_all_three_methods(run, loaded, tmp_path):
    """The whole file (deterministic): decode and forward equal RAVE's offline methods at the stated latency
    at several buffer sizes, and decode's stereo mode gives the two halves of the batch as two channels."""
    from streamify.export.rave import export_rave_run
    from streamify.export.rave_methods import RaveMethods

    path = tmp_path / "full.ts"
    info = export_rave_run(run, path, noise=False)
    assert list(info["methods"]) == ["encode", "decode", "forward"]
    module = torch.jit.load(str(path))
    assert module.decode_params.tolist() == [4, 16, 1, 1] and module.forward_params.tolist() == [1, 1, 1, 1]
    offline = RaveMethods(loaded.model)
    x = torch.randn(2, 1, 16 * 1024, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        z = offline.encode(x)
        want = {"decode": (z, offline.decode(z), 16), "forward": (x, offline(x), 1)}
    for name, (given, expected, in_ratio) in want.items():
        delay = int(info["methods"][name]["delay_samples"])
        for n in (256, 2048):
            module.reset_streams()
            y = _streamed(getattr(module, name), given, n // in_ratio)
            assert float(y[..., :delay].abs().max()) == 0.0
            error = (y[..., delay:] - expected[..., : y.size(-1) - delay]).abs().max()
            assert float(error) <= 1e-4 * float(expected.abs().max()), (name, n)
    module.reset_streams()
    mono = _streamed(module.decode, z, 128)
    module.reset_streams()
    module.set_stereo_mode(torch.tensor(True))
    stereo = _streamed(module.decode, z, 128)
    assert stereo.shape == (1, 2, mono.size(-1)) and torch.equal(stereo, mono.reshape(1, 2, -1))


def test_stereo_mode_of_the_rave_module(tmp_path):
    """RaveNnTilde (the module of RAVE files) around a small autoencoder: in stereo mode decode gives the two
    halves of its batch as two channels, encode takes channel 0 of a stereo buffer, forward answers in stereo."""
    from export_models import PowerOfTwoAutoencoder

    from streamify.export.nn_tilde import export_nn_tilde
    from streamify.export.rave import RaveNnTilde

    path = tmp_path / "stereo.ts"
    export_nn_tilde(
        PowerOfTwoAutoencoder(), path, torch.randn(1, 1, 1024), ("encode", "decode", "forward"), 48000,
        wrapper_base=RaveNnTilde,
    )  # fmt: skip
    module = torch.jit.load(str(path))
    x = torch.randn(2, 1, 8 * 256, generator=torch.Generator().manual_seed(2))
    stereo_in = torch.cat([x[:1], torch.randn_like(x[:1])], 1)
    mono = {}
    for method, signal, step in (("encode", x[:1], 256), ("forward", x[:1], 256), ("latents", x, 256)):
        module.reset_streams()
        mono[method] = _streamed(module.encode if method == "latents" else getattr(module, method), signal, step)
    module.reset_streams()
    z = mono["latents"]  # batch 2: the VST's two channels
    mono["decode"] = _streamed(module.decode, z, 32)
    module.set_stereo_mode(torch.tensor(True))
    module.reset_streams()
    assert torch.equal(_streamed(module.encode, stereo_in, 256), mono["encode"])
    module.reset_streams()
    assert torch.equal(_streamed(module.decode, z, 32), mono["decode"].reshape(1, 2, -1))
    module.reset_streams()
    assert torch.equal(_streamed(module.forward, stereo_in, 256), mono["forward"].repeat(1, 2, 1))


def test_options_of_other_models_refused_for_a_run(tmp_path):
    (tmp_path / "config.gin").write_text("")
    _touch(tmp_path / "version_0" / "checkpoints" / "last.ckpt", time.time())
    result = runner.invoke(app, ["export", str(tmp_path), "-o", str(tmp_path / "x.ts"), "--sample-rate", "44100"])
    assert result.exit_code == 2 and "--sample-rate do not apply to an acids-rave run" in result.output


def test_missing_acids_rave_is_one_line(run, tmp_path, monkeypatch):
    """Without acids-rave, the command says so in one line with the install command, exit status 2."""
    for name in [n for n in sys.modules if n == "rave" or n.startswith("rave.")]:
        monkeypatch.delitem(sys.modules, name)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "rave" else real(name, *a))
    result = runner.invoke(app, ["export", str(run), "-o", str(tmp_path / "x.ts")])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "needs acids-rave" in lines[0] and "pip install" in lines[0], result.output
