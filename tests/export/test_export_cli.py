"""``streamify export``: the command that :func:`streamify.export.commands.register` adds."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch
import typer
from typer.testing import CliRunner

from streamify.export import read_info
from streamify.export.commands import register

runner = CliRunner()


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)

    @app.callback()
    def _root() -> None:
        """streamify (test app)."""

    register(app)
    return app


@pytest.fixture
def factory_module(tmp_path, monkeypatch):
    (tmp_path / "export_factories.py").write_text(
        textwrap.dedent(
            """
            import torch.nn as nn

            def codec():
                return nn.Sequential(nn.Conv1d(1, 4, 5, padding=2), nn.ELU(), nn.Conv1d(4, 1, 4, stride=2, padding=1),
                                     nn.ConvTranspose1d(1, 1, 4, 2, 1))

            def odd():
                return nn.Conv1d(1, 1, 3, stride=3)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "export_factories"
    sys.modules.pop("export_factories", None)


def test_export_demo_model_to_nn_tilde(app, tmp_path):
    path = tmp_path / "demo.ts"
    result = runner.invoke(app, ["export", "demo", "-o", str(path), "--sample-rate", "16000", "--length", "4096"])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "forward" in result.output
    info = read_info(path)
    assert info["sample_rate"] == 16000 and info["methods"]["forward"]["delay_samples"] == 74
    assert torch.jit.load(str(path)).get_methods() == ["forward"]


def test_export_factory_with_weights_to_onnx(app, tmp_path, factory_module):
    pytest.importorskip("onnxruntime")
    module = __import__(factory_module)
    weights = tmp_path / "w.pt"
    torch.save({k: torch.full_like(v, 0.1) for k, v in module.codec().state_dict().items()}, weights)
    path = tmp_path / "codec.onnx"
    result = runner.invoke(
        app, ["export", f"{factory_module}:codec", "--weights", str(weights), "-o", str(path), "--length", "512"]
    )
    assert result.exit_code == 0, result.output
    assert "state input" in result.output
    from streamify.export import OnnxStream

    stream = OnnxStream(path)
    assert stream.in_channels == 1 and stream.out_channels == 1


def test_export_refusal_exits_with_the_reason(app, tmp_path, factory_module):
    result = runner.invoke(app, ["export", f"{factory_module}:odd", "-o", str(tmp_path / "odd.ts"), "--length", "300"])
    assert result.exit_code == 2
    assert "power of two" in result.output
    result = runner.invoke(
        app, ["export", "demo", "-o", str(tmp_path / "x.onnx"), "--method", "forward", "--method", "forward"]
    )
    assert result.exit_code == 2 and "one method" in result.output
    result = runner.invoke(app, ["export", "demo", "-o", str(tmp_path / "model.bin")])
    assert result.exit_code != 0 and "cannot tell the format" in result.output


def test_export_tunes_for_the_given_buffer_sizes(app, tmp_path, keep_tuned_tables):
    path = tmp_path / "demo.ts"
    args = ["export", "demo", "-o", str(path), "--length", "4096", "--tune", "256,512", "--tune-batch", "1,2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    loaded = torch.jit.load(str(path))
    tables = [dict(m.kernel_table) for _, m in loaded.named_modules() if hasattr(m, "fast_path_rows")]
    # every conv got a choice per row count it sees: batch x frames of 256 and 512 samples at batch 1 and 2
    assert tables and all(tables)
    assert max(len(t) for t in tables) == 3 and 256 in tables[0]
    result = runner.invoke(app, ["export", "demo", "-o", str(path), "--tune", "big"])
    assert result.exit_code != 0 and "comma-separated integers" in result.output


def test_export_guesses_the_input_channels_as_process_does(app, tmp_path, monkeypatch):
    (tmp_path / "stereo_factories.py").write_text(
        "import torch.nn as nn\n\ndef stereo():\n    return nn.Sequential(nn.Conv1d(2, 4, 3, padding=1), nn.Conv1d(4, 2, 1))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "stereo.ts"
    result = runner.invoke(app, ["export", "stereo_factories:stereo", "-o", str(path), "--length", "512"])
    sys.modules.pop("stereo_factories", None)
    assert result.exit_code == 0, result.output
    assert "input channels: 2 (guessed" in result.output
    assert read_info(path)["methods"]["forward"]["in_channels"] == 2
    from streamify.host import load_host_model

    assert load_host_model("stereo_factories:stereo").in_channels == 2
    sys.modules.pop("stereo_factories", None)


def test_dash_m_is_the_model_in_export_and_never_silently_a_method(app, tmp_path, factory_module):
    path = tmp_path / "codec.ts"
    result = runner.invoke(app, ["export", "-m", f"{factory_module}:codec", "-o", str(path), "--length", "512"])
    assert result.exit_code == 0, result.output
    assert read_info(path)["methods"].keys() == {"forward"}
    result = runner.invoke(app, ["export", "-m", "encode", "-o", str(tmp_path / "x.ts")])
    assert result.exit_code == 2 and "--method encode" in result.output, result.output
    result = runner.invoke(app, ["export", "demo", "-m", "pretrained", "-o", str(tmp_path / "x.ts")])
    assert result.exit_code == 2 and "give the model once" in result.output, result.output
    result = runner.invoke(
        app, ["export", f"{factory_module}:codec", "--method", "decode", "-o", str(tmp_path / "y.ts")]
    )
    assert result.exit_code == 2 and "has no method 'decode'; it has forward" in result.output, result.output
    assert not (tmp_path / "x.ts").exists() and not (tmp_path / "y.ts").exists()


def test_export_says_each_stage_as_it_begins(app, tmp_path, factory_module, capsys):
    result = runner.invoke(app, ["export", f"{factory_module}:codec", "-o", str(tmp_path / "c.ts"), "--length", "512"])
    assert result.exit_code == 0, result.output
    stages = [line for line in result.output.splitlines() if line.startswith("export [")]
    wanted = ["loading the model", "converting forward", "compiling the file", "checking forward as nn~", "writing"]
    assert len(stages) == len(wanted), stages
    assert all(w in line for w, line in zip(wanted, stages)), stages
    # the library itself stays silent: only the command installs a reporter
    from export_factories import codec

    from streamify.export import export_nn_tilde

    export_nn_tilde(codec(), tmp_path / "quiet.ts", torch.randn(1, 1, 512))
    assert capsys.readouterr().err == ""
