"""Set-up of the host tests: a JACK server with the dummy driver, and the test models' folder on ``sys.path``.

The live tests need a JACK server. One already running is used; otherwise this starts
``jackd -d dummy -r 48000 -p 1024`` for the session and stops it after. Without jackd installed
the live tests skip, except in CI (``CI`` set), where they fail: CI must run them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


def _server_running() -> bool:
    if shutil.which("jack_wait") is None:
        return False
    return subprocess.run(["jack_wait", "-c"], capture_output=True, text=True).stdout.strip() == "running"


@pytest.fixture(scope="session")
def jack_server():
    """A running JACK server (rate and period as it runs; 48000 Hz / 1024 when this fixture starts it)."""
    if shutil.which("jackd") is None:
        if os.environ.get("CI"):
            pytest.fail("jackd is not installed: CI must run the live tests (apt-get install jackd2)")
        pytest.skip("jackd is not installed (apt-get install jackd2)")
    if _server_running():
        yield None
        return
    process = subprocess.Popen(
        ["jackd", "-d", "dummy", "-r", "48000", "-p", "1024"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        waited = subprocess.run(["jack_wait", "-w", "-t", "10"], capture_output=True, text=True)
        if waited.returncode != 0 or process.poll() is not None:
            pytest.fail(f"jackd -d dummy did not start: {waited.stdout.strip()} {waited.stderr.strip()}")
        time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
