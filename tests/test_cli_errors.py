"""What the command line does with a user's mistakes: one line saying what and how to fix, exit 2, no traceback.

Each case runs the real command (Typer's runner, and a real process for the entry point): a
missing or unreadable ``--weights`` file, weights of another model, a refused pickle, a missing
or truncated ``.ts``, a wrong ``--channels``, a factory that cannot be found or fails. A factory
module is found in the current directory, as ``python -m`` finds it.
"""

from __future__ import annotations

import importlib
import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import List

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from streamify.cli import app
from streamify.cli_errors import run_guarded
from streamify.layers.base import StreamingError

SRC = str(Path(__file__).resolve().parents[1] / "src")

MODULE = textwrap.dedent(
    """
    import torch
    import torch.nn as nn


    def build():
        return nn.Sequential(nn.Conv1d(1, 4, 5, padding=2), nn.ReLU(), nn.Conv1d(4, 1, 4, stride=2, padding=1))


    def other():
        return nn.Sequential(nn.Conv1d(1, 8, 3, padding=1))


    def broken():
        return nn.Conv1d(1, 1, 3, groups=2)
    """
)


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """A folder holding ``mymodel.py`` and weights files good and bad; the current directory."""
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "mymodel.py").write_text(MODULE)
    torch.manual_seed(0)
    good = nn.Sequential(nn.Conv1d(1, 4, 5, padding=2), nn.ReLU(), nn.Conv1d(4, 1, 4, stride=2, padding=1))
    torch.save(good.state_dict(), folder / "good.pt")
    torch.save(nn.Sequential(nn.Conv1d(1, 8, 3, padding=1)).state_dict(), folder / "other.pt")
    torch.save(good, folder / "whole_model.pt")  # a pickled module: refused by weights_only
    torch.save(torch.zeros(3), folder / "tensor.pt")
    buffer = io.BytesIO()
    torch.save(good.state_dict(), buffer)
    (folder / "truncated.pt").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (folder / "text.pt").write_text("not a checkpoint")
    (folder / "folder.pt").mkdir()
    scripted = io.BytesIO()
    torch.jit.save(torch.jit.script(nn.Conv1d(1, 1, 3)), scripted)
    (folder / "truncated.ts").write_bytes(scripted.getvalue()[: len(scripted.getvalue()) // 2])
    (folder / "foreign.ts").write_bytes(scripted.getvalue())  # a TorchScript file streamify did not write
    monkeypatch.chdir(folder)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(folder))])
    yield folder
    sys.modules.pop("mymodel", None)


def _one_line_refusal(result, *phrases: str) -> str:
    """The output is one ``error:`` line holding ``phrases``, with status 2 and no traceback (besides the stages an
    export says as it goes, ``export [  1.0 s] ...``, which precede it)."""
    lines = [line for line in result.output.splitlines() if line.strip() and not line.startswith("export [")]
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    return lines[0]


INFO = ["info", "mymodel:build", "--length", "256"]

CASES = {
    "missing weights": (INFO + ["--weights", "missing.pt"], ["--weights missing.pt: no such file", "torch.save("]),
    "a folder for weights": (INFO + ["--weights", "folder.pt"], ["is a folder, not a file"]),
    "text for weights": (
        INFO + ["--weights", "text.pt"],
        ["text.pt is not a file written by torch.save"],
    ),
    "truncated weights": (INFO + ["--weights", "truncated.pt"], ["truncated.pt is truncated"]),
    "a tensor for weights": (INFO + ["--weights", "tensor.pt"], ["holds a Tensor, not a state dict"]),
    "weights of another model": (
        INFO + ["--weights", "other.pt"],
        [
            "other.pt do not fit mymodel:build",
            "2 missing (2.weight, 2.bias)",
            "2 of another shape (0.weight: file (8, 1, 3), model (4, 1, 5)",
            "weights of another model",
        ],
    ),
    "a refused pickle": (
        INFO + ["--weights", "whole_model.pt"],
        [
            "whole_model.pt holds Python objects besides tensors",
            "torch.nn.modules.container.Sequential",
            "weights_only=True",
            "state_dict()",
        ],
    ),
    "wrong channels (info)": (
        INFO + ["--channels", "2"],
        ["fails on an input of shape [1, 2, 256]", "takes 1 channels: pass --channels 1"],
    ),
    "wrong channels (export)": (
        ["export", "mymodel:build", "--channels", "3", "--length", "256", "-o", "out.ts"],
        ["fails on an input of shape [1, 3, 256]", "pass --channels 1"],
    ),
    "weights of another model (export)": (
        ["export", "mymodel:build", "--weights", "other.pt", "-o", "out.ts"],
        ["other.pt do not fit mymodel:build"],
    ),
    "missing .ts": (["info", "missing.ts"], ["missing.ts does not exist"]),
    "truncated .ts": (["info", "truncated.ts"], ["truncated.ts"]),
    "foreign .ts": (["info", "foreign.ts"], ["foreign.ts"]),
    "no such module": (["info", "nomodule:build"], ["no module 'nomodule' in the current directory"]),
    "no such factory": (["info", "mymodel:nothing"], ["has no 'nothing'", "(broken, build, other)"]),
    "a failing factory": (["info", "mymodel:broken"], ["mymodel:broken() raised", "mymodel.py, line"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_mistake_is_one_line_with_status_2(workdir, case) -> None:
    args, phrases = CASES[case]
    _one_line_refusal(CliRunner().invoke(app, args), *phrases)
    assert not (workdir / "out.ts").exists()


def test_good_weights_still_load(workdir) -> None:
    result = CliRunner().invoke(app, INFO + ["--weights", "good.pt"])
    assert result.exit_code == 0, result.output
    assert "2 input samples per output frame" in result.output


def _command(workdir: Path, args: List[str], **env: str) -> subprocess.CompletedProcess:
    """``streamify args`` run as its installed script runs: its own folder on ``sys.path``, not the current one."""
    launcher = workdir.parent / "bin" / "streamify_script.py"
    launcher.parent.mkdir(exist_ok=True)
    launcher.write_text("import sys\nfrom streamify.cli import main\n\nsys.exit(main())\n")
    return subprocess.run(
        [sys.executable, str(launcher), *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, PYTHONPATH=SRC, **env),
    )


def test_the_command_finds_a_factory_in_the_current_directory(workdir) -> None:
    """Issue 11: ``streamify info mymodel:build`` next to mymodel.py failed with "No module named 'mymodel'"."""
    completed = _command(workdir, INFO)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "2 output frames" in completed.stdout


def test_the_real_command_refuses_in_one_line_on_stderr(workdir) -> None:
    for args, phrase in [
        (INFO + ["--weights", "other.pt"], "do not fit mymodel:build"),
        (INFO + ["--weights", "whole_model.pt"], "holds Python objects"),
        (["info", "truncated.ts"], "truncated.ts"),
    ]:
        completed = _command(workdir, args)
        assert completed.returncode == 2, completed.stdout + completed.stderr
        lines = completed.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and phrase in lines[0], completed.stderr
        assert "Traceback" not in completed.stdout + completed.stderr


def test_an_unexpected_error_is_one_line_unless_the_traceback_is_asked_for(monkeypatch, capsys) -> None:
    def crash() -> None:
        raise ValueError("first line\nsecond line")

    monkeypatch.delenv("STREAMIFY_TRACEBACK", raising=False)
    with pytest.raises(SystemExit) as exited:
        run_guarded(crash)
    assert exited.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "unexpected ValueError: first line second line" in lines[0]
    assert "STREAMIFY_TRACEBACK=1" in lines[0]
    monkeypatch.setenv("STREAMIFY_TRACEBACK", "1")
    with pytest.raises(ValueError, match="first line"):
        run_guarded(crash)


def test_a_missing_factory_lists_the_module_s_own_factories(tmp_path, monkeypatch) -> None:
    """All functions and nn.Module classes defined in the module (not imported ones, not other classes), the first
    10 and the count when there are more."""
    lines = ["import torch", "from torch import nn", "from math import sqrt", "class Plain:", "    pass"]
    lines += [f"class Net{i}(nn.Module):\n    pass" for i in range(6)]
    lines += [f"def make{i}():\n    return Net0()" for i in range(8)]
    (tmp_path / "manyfactories.py").write_text("\n".join(lines) + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from streamify.loading import factories, load_model

    module = importlib.import_module("manyfactories")
    assert factories(module) == [f"make{i}" for i in range(8)] + [f"Net{i}" for i in range(6)]
    with pytest.raises(StreamingError) as caught:
        load_model("manyfactories:nosuch")
    assert "make0, make1, make2, make3, make4, make5, make6, make7, Net0, Net1, ... (14 in all)" in str(caught.value)
    assert "sqrt" not in str(caught.value) and "Plain" not in str(caught.value)
