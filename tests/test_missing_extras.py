"""A missing optional package ends as one line naming the extra to install, exit status 2.

Each case runs the real ``streamify`` entry point in a fresh interpreter where an import hook
hides the package (as if ``pip install streamify`` had been run without the extra), so that
the test does not depend on what this machine has installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from streamify.extras import MODULES, install_line, missing_message

#: run in a fresh interpreter: each case hides its packages (an import hook), runs the streamify entry point
#: with its arguments and records the exit status and stderr; the results go to stdout as JSON
RUNNER = textwrap.dedent(
    """
    import contextlib, importlib.abc, io, json, os, sys
    cases = json.loads(sys.argv[1])
    hidden = set()

    class Hide(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in hidden:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Hide())
    from streamify.cli import main
    results = {}
    for name, (hide, args) in cases.items():
        hidden.clear()
        hidden.update(hide.split(","))
        for module in [n for n in sys.modules if n.split(".")[0] in hidden]:
            del sys.modules[module]
        sys.argv = ["streamify"] + args
        err = io.StringIO()
        code = 0
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                main()
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 1
        results[name] = [code, err.getvalue()]
    print(json.dumps(results))
    """
)

CASES = {
    "process": ("soundfile", ["process", "in.wav", "out.wav", "-m", "demo"], "host", "soundfile"),
    "demo_input": ("soundfile", ["demo", "--input", "in.wav"], "host", "soundfile"),
    "live_jack": ("jack", ["live", "-m", "demo", "--backend", "jack", "--seconds", "0"], "host", "JACK-Client"),
    "live_portaudio": ("sounddevice", ["live", "-m", "demo", "--backend", "portaudio"], "host", "sounddevice"),
    "export_onnx": ("onnx,onnxruntime", ["export", "demo", "-o", "m.onnx"], "export", "onnx"),
    "train": ("lightning", ["train", "data", "--out", "run"], "train", "lightning"),
    "data": ("mido", ["data", "music", "out"], "data", "mido"),
}


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("extras")
    (folder / "in.wav").write_bytes(b"RIFF")  # never read: the missing package is met first
    (folder / "data").mkdir()
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent / "src"), COLUMNS="200")
    env.pop("STREAMIFY_TRACEBACK", None)
    cases = json.dumps({name: [hide, args] for name, (hide, args, _, _) in CASES.items()})
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, cases], cwd=folder, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    found["folder"] = folder
    return found


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_missing_package_names_its_extra(case: str, results: dict) -> None:
    _, _, extra, package = CASES[case]
    code, stderr = results[case]
    assert code == 2, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and install_line(extra) in lines[0], lines[0]
    assert f"package {package}" in lines[0], lines[0]
    assert "\x1b[" not in stderr and "Traceback" not in stderr
    assert not (results["folder"] / "out.wav").exists() and not (results["folder"] / "m.onnx").exists()


def test_every_optional_module_belongs_to_an_extra_of_the_package() -> None:
    text = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    for module, (package, extra) in MODULES.items():
        assert f'"{package}>=' in text or f'"{package}==' in text, package
        if extra:
            assert f"\n{extra} = [" in text, extra
        assert install_line(extra or "host") in missing_message(module, "process")
    assert missing_message("soundfile", "train").endswith(install_line("train"))
    assert missing_message("soundfile", "data").endswith(install_line("data"))
    assert missing_message("torch.nn", "process") is None  # not optional: no extra to name


def test_skip_hints_name_packages_that_exist() -> None:
    """The tests' skip messages name what pip installs: every published model package the tests import is in the
    ``convert`` extra (or the bench extra) under the name the hint gives."""
    from helpers import DISTRIBUTIONS, install_hint

    text = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    for module in ("dac", "rave", "cached_conv", "gin", "vocos", "encodec", "snac", "moshi", "bigvgan", "demucs"):
        distribution = install_hint(module).split()[-1]
        assert f'"{distribution}==' in text or f'"{distribution}>=' in text, (module, distribution)
    assert install_hint("dac") == "pip install --no-deps descript-audio-codec"
    assert install_hint("rave") == "pip install --no-deps acids-rave"
    assert set(DISTRIBUTIONS) >= {"dac", "rave"}


def test_native_products_without_ninja_name_the_native_extra(tmp_path, monkeypatch) -> None:
    import torch.utils.cpp_extension

    from streamify.native import build

    def no_ninja(*args, **kwargs):
        raise RuntimeError("Ninja is required to load C++ extensions (pip install ninja to get it)")

    monkeypatch.setattr(torch.utils.cpp_extension, "load", no_ninja)
    reason = build._compile_and_load([], tmp_path)
    assert reason is not None and install_line("native") in reason and "package ninja" in reason
