"""The native build's lock: a build killed half-way is taken over, a lock held too long is given up.

torch's extension builder guards its build folder with a ``lock`` file that it waits on forever and
that a killed build leaves behind: every later ``native.load()`` (and ``streamify.tune``) hung.
Each scenario runs real processes: a builder (or lock holder) that is SIGKILLed or kept alive, then
a fresh process calling ``native.load()`` on the same cache folder.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streamify import native
from streamify.native import build

SRC = str(Path(__file__).resolve().parents[2] / "src")

#: a fresh process loading the native products: prints what load() said, how long it took, its warnings
LOADER = """
import json, time, warnings
import streamify
from streamify import native
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    began = time.monotonic()
    loaded = native.load()
    took = time.monotonic() - began
print(json.dumps({"loaded": loaded, "seconds": took, "reason": native.unavailable_reason(),
                  "warnings": [str(w.message) for w in caught if "streamify" in str(w.message)]}))
"""

#: takes streamify's build lock in the build folder and, like torch's builder, its ``lock`` file; then waits
HOLDER = """
import os, sys, time
from filelock import FileLock
from streamify.native import build
directory = build.cache_dir()
directory.mkdir(parents=True, exist_ok=True)
lock = FileLock(str(directory / build.LOCK_NAME))  # kept: a collected FileLock releases its lock
lock.acquire()
os.close(os.open(str(directory / "lock"), os.O_CREAT | os.O_EXCL))  # what torch's FileBaton does
print("holding", flush=True)
time.sleep(3600)
"""


def _env(cache: Path, **extra: str) -> dict:
    env = dict(os.environ, PYTHONPATH=SRC, STREAMIFY_CACHE=str(cache), **extra)
    env.pop("STREAMIFY_NATIVE", None)
    return env


def _load_in_a_fresh_process(cache: Path, timeout: float, **extra: str) -> dict:
    try:
        completed = subprocess.run(
            [sys.executable, "-c", LOADER], capture_output=True, text=True, timeout=timeout, env=_env(cache, **extra)
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"native.load() still waited after {timeout} s: the build lock was not taken over")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _start_holder(cache: Path) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER], stdout=subprocess.PIPE, text=True, env=_env(cache), start_new_session=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    return holder


def _kill(process: subprocess.Popen) -> None:
    """SIGKILL the process and the children of its session (ninja, the compiler), as an OOM killer or kill -9."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def built() -> Path:
    """The folder of this machine's build (copied by the tests into their own cache folders)."""
    if not native.load():
        message = f"native products unavailable: {native.unavailable_reason()}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return build.cache_dir()


def _cache_with_the_build(built: Path, tmp_path: Path) -> Path:
    cache = tmp_path / "cache"
    shutil.copytree(built, cache / "native" / built.name, ignore=shutil.ignore_patterns("lock", build.LOCK_NAME))
    return cache


def test_the_lock_of_a_killed_holder_is_taken_over(built, tmp_path) -> None:
    cache = _cache_with_the_build(built, tmp_path)
    holder = _start_holder(cache)
    _kill(holder)
    assert (cache / "native" / built.name / "lock").exists()  # torch's lock, left behind: torch waits on it forever
    result = _load_in_a_fresh_process(cache, timeout=120)
    assert result["loaded"], result
    assert result["warnings"] == []
    assert not (cache / "native" / built.name / "lock").exists()


def test_a_lock_held_too_long_gives_up_with_the_portable_products(built, tmp_path) -> None:
    cache = _cache_with_the_build(built, tmp_path)
    holder = _start_holder(cache)
    try:
        result = _load_in_a_fresh_process(cache, timeout=120, STREAMIFY_NATIVE_LOCK_TIMEOUT="2")
    finally:
        _kill(holder)
    assert not result["loaded"]
    assert 2.0 <= result["seconds"] < 60.0, result
    for text in (result["reason"], *result["warnings"]):
        assert "build lock" in text and "for over 2 s" in text and "portable products" in text, result
    assert len(result["warnings"]) == 1
    # the holder gone, a new process takes the build
    assert _load_in_a_fresh_process(cache, timeout=120)["loaded"]


def test_a_process_that_gave_up_still_streams_and_tunes_without_the_kernel(built, tmp_path) -> None:
    cache = _cache_with_the_build(built, tmp_path)
    holder = _start_holder(cache)
    script = """
import warnings
import torch
from torch import nn
import streamify
warnings.simplefilter("ignore")
model = streamify.convert(nn.Sequential(nn.Conv1d(1, 4, 5, padding=2), nn.Conv1d(4, 1, 3, padding=1)).double(),
                          torch.randn(1, 1, 64, dtype=torch.float64))
report = streamify.tune(model, [16], [1])
x = torch.randn(1, 1, 64, dtype=torch.float64)
with torch.no_grad():
    y = torch.cat([model(b) for b in x.split(16, -1)], -1)
    error = (y[..., model.delay:] - model.offline(x)[..., : 64 - model.delay]).abs().max().item()
print(report.native, error)
print(report.native_note)
"""
    try:
        completed = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=180,
            env=_env(cache, STREAMIFY_NATIVE_LOCK_TIMEOUT="1"),
        )
    finally:
        _kill(holder)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    first, note = completed.stdout.strip().splitlines()[-2:]
    native_used, error = first.split()
    assert native_used == "False" and float(error) <= 1e-10
    assert "build lock" in note


@pytest.mark.slow
def test_a_real_build_killed_half_way_is_taken_over(built, tmp_path) -> None:
    """A process killed while compiling (its compiler too), then a fresh process: it builds, it does not wait."""
    cache = tmp_path / "cache"
    builder = subprocess.Popen(
        [sys.executable, "-c", LOADER], stdout=subprocess.DEVNULL, env=_env(cache), start_new_session=True
    )
    deadline = time.monotonic() + 120
    batons: list = []
    while not batons and builder.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
        batons = list(cache.glob("native/*/lock"))  # torch's lock in the build folder
    assert batons, "the builder never took torch's build lock"
    time.sleep(1.0)  # into the compile
    _kill(builder)
    baton = batons[0]
    assert baton.exists() and not (baton.parent / "streamify_native.so").exists()
    result = _load_in_a_fresh_process(cache, timeout=400)
    assert result["loaded"], result
