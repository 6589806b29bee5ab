"""Hear it: stream audio files and live audio through a model (see docs/host.md).

* :func:`load_host_model` gives one interface (:class:`HostModel`) over converted PyTorch models,
  factories and checkpoints, nn~ TorchScript files and ONNX files with explicit state.
* :func:`process_array` / :func:`process_file` run a signal buffer by buffer as a host would.
* :func:`start_live` runs live audio through JACK (JACK-Client) or PortAudio (sounddevice).
"""

from streamify.host.files import (
    Clipping,
    FileResult,
    clipping,
    process_array,
    process_file,
    read_audio,
    resample,
    write_audio,
)
from streamify.host.live import LiveEngine, LiveSession, start_live
from streamify.host.models import HostError, HostModel, load_host_model
from streamify.host.report import RunReport

__all__ = [
    "Clipping",
    "FileResult",
    "clipping",
    "HostError",
    "HostModel",
    "LiveEngine",
    "LiveSession",
    "RunReport",
    "load_host_model",
    "process_array",
    "process_file",
    "read_audio",
    "resample",
    "start_live",
    "write_audio",
]
