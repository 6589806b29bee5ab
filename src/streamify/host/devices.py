"""PortAudio through sounddevice: importing it, and finding the input device, with messages a user can act on."""

from __future__ import annotations

import types
from typing import Any, Dict

from streamify.extras import missing_message
from streamify.host.models import HostError


def sounddevice() -> types.ModuleType:
    """The ``sounddevice`` module; :class:`HostError` naming the extra (missing package) or the system library."""
    try:
        import sounddevice as sd
    except ImportError as error:
        raise HostError(missing_message("sounddevice", "live", "the PortAudio backend") or str(error)) from error
    except OSError as error:  # the package is there, PortAudio itself is not
        raise HostError(
            f"streamify: the PortAudio backend cannot load the PortAudio library ({error}): install it "
            "(Debian/Ubuntu: apt-get install libportaudio2), or use --backend jack"
        ) from error
    return sd


def input_device(sd: types.ModuleType, device: Any = None) -> Dict[str, Any]:
    """sounddevice's description of the input ``device`` (name or index; None: the default input)."""
    try:
        return sd.query_devices(device, "input") if device is not None else sd.query_devices(kind="input")
    except (ValueError, sd.PortAudioError) as error:
        try:
            inputs = [d["name"] for d in sd.query_devices() if d.get("max_input_channels", 0) > 0]
        except Exception:  # noqa: BLE001 - only for the message
            inputs = []
        seen = (
            f"inputs PortAudio sees: {', '.join(repr(n) for n in inputs[:6])}" if inputs else "PortAudio sees no input"
        )
        if device is None:
            raise HostError(
                f"streamify: no PortAudio input device: this machine has no default audio input ({seen}); "
                "connect one, pick one with --device NAME or INDEX (python -m sounddevice lists them), "
                "or use --backend jack"
            ) from error
        raise HostError(
            f"streamify: no PortAudio input device {device!r} ({seen}); pick one with --device NAME or INDEX "
            "(python -m sounddevice lists them)"
        ) from error


def backend_module(backend: str) -> types.ModuleType:
    """The module of a live backend (``"jack"``: jack, ``"portaudio"``: sounddevice); :class:`HostError` naming
    the extra to install when it is missing."""
    if backend == "portaudio":
        return sounddevice()
    try:
        import jack
    except ImportError as error:
        raise HostError(missing_message("jack", "live", "the JACK backend") or str(error)) from error
    return jack
