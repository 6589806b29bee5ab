"""An exported file in a libtorch host that feeds it the way nn~ does (tests/export/cpp/host.cpp).

The host is built with CMake against the headers and CMake config that the torch wheel
ships (``torch.utils.cmake_prefix_path``); the build is cached in the temporary folder,
keyed by the sources and the torch version, so only the first run pays for it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from export_models import PowerOfTwoAutoencoder, build

from streamify.export import export_nn_tilde, read_info

pytestmark = pytest.mark.slow

SOURCES = Path(__file__).resolve().parent / "cpp"
SAMPLE_RATE = 48000


def _build_host() -> Path:
    if shutil.which("cmake") is None or (shutil.which("c++") or shutil.which("g++")) is None:
        pytest.skip("cmake and a C++ compiler are needed to build the libtorch host")
    digest = hashlib.sha256()
    for name in ("CMakeLists.txt", "host.cpp"):
        digest.update((SOURCES / name).read_bytes())
    digest.update(torch.__version__.encode())
    digest.update(torch.utils.cmake_prefix_path.encode())
    folder = Path(tempfile.gettempdir()) / f"streamify-nn-host-{digest.hexdigest()[:16]}"
    binary = folder / "nn_host"
    if binary.exists():
        return binary
    scratch = Path(tempfile.mkdtemp(prefix="streamify-nn-host-build-"))
    try:
        subprocess.run(
            [
                "cmake",
                "-S",
                str(SOURCES),
                "-B",
                str(scratch),
                "-DCMAKE_BUILD_TYPE=Release",
                f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path}",
            ],
            check=True,
            capture_output=True,
            timeout=600,
        )
        subprocess.run(
            ["cmake", "--build", str(scratch), "-j", str(os.cpu_count() or 1)],
            check=True,
            capture_output=True,
            timeout=900,
        )
        folder.mkdir(parents=True, exist_ok=True)
        # a finished binary appears atomically: concurrent runs never see half a file
        partial = folder / f"nn_host.{os.getpid()}"
        shutil.copy2(scratch / "nn_host", partial)
        partial.replace(binary)
    except subprocess.CalledProcessError as error:
        pytest.fail(f"building the libtorch host failed:\n{error.stdout.decode()}\n{error.stderr.decode()}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return binary


@pytest.fixture(scope="module")
def host() -> Path:
    return _build_host()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.set_num_threads(1)
    model = build(PowerOfTwoAutoencoder)
    path = tmp_path_factory.mktemp("host") / "ae.ts"
    example = torch.randn(1, 1, 512, generator=torch.Generator().manual_seed(3))
    export_nn_tilde(model, path, example, methods=("encode", "decode", "forward"), sample_rate=SAMPLE_RATE)
    return model, path


def _run_host(
    host: Path, path: Path, method: str, n: int, signal: np.ndarray, out_channels: int, tmp_path, reset_at=-1
):
    """Feed ``signal`` [batch, channels, samples] (audio rate) to the host; returns its output and stdout."""
    inputs, outputs = tmp_path / f"{method}_in.f32", tmp_path / f"{method}_out.f32"
    np.ascontiguousarray(signal, dtype=np.float32).tofile(inputs)
    batch = signal.shape[0]
    command = [str(host), str(path), method, str(n), str(batch), str(inputs), str(outputs), str(reset_at)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    y = np.fromfile(outputs, dtype=np.float32).reshape(batch, out_channels, signal.shape[-1])
    return torch.from_numpy(y), result.stdout


def _python(path: Path, method: str, x: torch.Tensor, frames: int, reset_at: int = -1) -> torch.Tensor:
    """The same file run from Python on [batch, channels, frames-rate] input, buffers of ``frames``."""
    model = torch.jit.load(str(path))
    outputs = []
    with torch.inference_mode():
        for k, start in enumerate(range(0, x.size(-1), frames)):
            if k == reset_at:
                model.set_reset(True)
            outputs.append(getattr(model, method)(x[..., start : start + frames]))
    return torch.cat(outputs, -1)


@pytest.mark.parametrize("batch", [1, 2])
def test_host_streams_forward_like_python(host, exported, tmp_path, batch):
    _, path = exported
    n = 2048
    x = torch.randn(batch, 1, 6 * n, generator=torch.Generator().manual_seed(batch))
    y, stdout = _run_host(host, path, "forward", n, x.numpy(), 1, tmp_path)
    assert "methods: encode decode forward" in stdout
    assert "params: 1 1 1 1" in stdout and "attributes: reset(1) reset_item(1)" in stdout
    delay = read_info(path)["methods"]["forward"]["delay_samples"]
    assert f"info: forward.delay_samples={delay}" in stdout and "info: sample_rate=48000" in stdout
    expected = _python(path, "forward", x, n)
    assert torch.equal(y, expected)


def test_host_streams_encode_and_decode_at_their_rates(host, exported, tmp_path):
    model, path = exported
    n, batch = 2048, 2
    x = torch.randn(batch, 1, 4 * n, generator=torch.Generator().manual_seed(4))
    # encode: the host repeats each latent frame out_ratio = 8 times to fill its audio-rate outlets
    y, stdout = _run_host(host, path, "encode", n, x.numpy(), 4, tmp_path)
    assert "params: 1 1 4 8" in stdout
    latents = _python(path, "encode", x, n)
    assert torch.equal(y, latents.repeat_interleave(8, dim=-1))
    # decode: latents arrive at audio rate, held for in_ratio = 8 samples; the host keeps the last of each group
    held = latents.repeat_interleave(8, dim=-1)
    y, stdout = _run_host(host, path, "decode", n, held.numpy(), 1, tmp_path)
    assert "params: 4 8 1 1" in stdout
    assert torch.equal(y, _python(path, "decode", latents, n // 8))


def test_host_reset_attribute_restarts_the_streams(host, exported, tmp_path):
    _, path = exported
    n, batch = 2048, 2
    x = torch.randn(batch, 1, 6 * n, generator=torch.Generator().manual_seed(8))
    y, _ = _run_host(host, path, "forward", n, x.numpy(), 1, tmp_path, reset_at=3)
    assert torch.equal(y, _python(path, "forward", x, n, reset_at=3))
    # after `set reset 1` the stream is fresh: the second half equals a new stream on it
    fresh = _python(path, "forward", x[..., 3 * n :], n)
    assert torch.equal(y[..., 3 * n :], fresh)
