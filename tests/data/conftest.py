"""Tests of the data recipes: external programs are skipped when missing, except in CI (CI=true) where the
missing program fails the test (.ci/run installs the apt packages espeak-ng, fluidsynth, fluid-soundfont-gm)."""

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest


def _missing(what: str, apt_package: str) -> None:
    message = f"{what} is not installed (apt-get install {apt_package})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}: CI must install it")
    pytest.skip(message)


@pytest.fixture
def need() -> Callable[[str], None]:
    """``need("espeak-ng")`` / ``need("fluidsynth")``: skip (fail in CI) when the recipe's tools are missing."""

    def check(tool: str) -> None:
        if tool == "espeak-ng" and shutil.which("espeak-ng") is None:
            _missing("espeak-ng", "espeak-ng")
        if tool == "fluidsynth":
            if shutil.which("fluidsynth") is None:
                _missing("fluidsynth", "fluidsynth")
            from streamify.data.music import SOUNDFONT

            if not Path(SOUNDFONT).is_file():
                _missing(f"the soundfont {SOUNDFONT}", "fluid-soundfont-gm")

    return check
