"""Run by tests/runtime/test_floor.py in a fresh process: the runtime streams a converted model with the
converter blocked (any import of ``streamify.convert`` raises), through the eager runtime, the nn~ export of
an already converted model, and the host that plays the exported file.

Usage: ``python floor_child.py FOLDER`` (FOLDER holds ``stream.pt``, ``signal.pt`` and ``offline.pt``).
"""

from __future__ import annotations

import importlib.abc
import sys
from pathlib import Path


class BlockConverter(importlib.abc.MetaPathFinder):
    """Refuses ``streamify.convert`` and its modules, naming the import that reached for them."""

    def find_spec(self, name, path, target=None):
        if name == "streamify.convert" or name.startswith("streamify.convert."):
            raise ImportError(f"the runtime imported the converter ({name})")
        return None


sys.meta_path.insert(0, BlockConverter())

import torch  # noqa: E402

import streamify  # noqa: E402,F401
import streamify.export  # noqa: E402
import streamify.host  # noqa: E402
import streamify.layers  # noqa: E402,F401
import streamify.runtime  # noqa: E402
import streamify.serve.session  # noqa: E402,F401
from streamify.host.files import process_array  # noqa: E402
from streamify.host.models import load_host_model  # noqa: E402


def close(got: torch.Tensor, want: torch.Tensor, shift: int, what: str) -> None:
    """``got`` equals ``want`` delayed by ``shift`` frames (float32 rounding), a fresh stream's zeros before."""
    got, want = got.double(), want.double()
    frames = got.size(-1) - shift
    error = (got[..., shift:] - want[..., :frames]).abs().max().item()
    scale = want.abs().max().item()
    assert error <= 1e-5 * scale, f"{what}: max error {error} (scale {scale}) at a delay of {shift} frames"
    assert bool((got[..., :shift] == 0).all()), f"{what}: the first {shift} frames of a fresh stream are not zeros"


def main(folder: Path) -> None:
    stream = torch.load(folder / "stream.pt", weights_only=False)  # a converted model, pickled whole
    x = torch.load(folder / "signal.pt")
    offline = torch.load(folder / "offline.pt")
    assert isinstance(stream, streamify.runtime.StreamingModel)

    # 1. eager: buffers of 6 samples, not a multiple of the model's buffer_multiple
    buffered = streamify.runtime.AnyLengthStream(stream)
    y = torch.cat([buffered(x[..., i : i + 6]) for i in range(0, x.size(-1), 6)], -1)
    close(y, offline, stream.delay + buffered.extra_output_frames(6), "AnyLengthStream")

    # 2. the nn~ export of the converted model, then the host playing the file at 192-sample buffers
    stream.reset()
    path = folder / "model.ts"
    streamify.export.export_nn_tilde(stream, path, x[..., :64], sample_rate=48000)
    host = load_host_model(path)
    played, _ = process_array(host, x[0].numpy(), 192)
    close(torch.from_numpy(played).unsqueeze(0), offline, host.delay_at(192), "the nn~ file in the host")

    loaded = sorted(name for name in sys.modules if name.startswith("streamify.convert"))
    assert not loaded, loaded
    print("runtime floor: streamed without streamify.convert")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
