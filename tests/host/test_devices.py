"""PortAudio without an input device: a plain message saying so and what to do, not "device None: -1"."""

from __future__ import annotations

import types

import pytest

from streamify.host.devices import input_device
from streamify.host.models import HostError


class PortAudioError(Exception):
    pass


def _sounddevice(devices: list) -> types.SimpleNamespace:
    """A stand-in for sounddevice on a machine with ``devices`` and no default input (PortAudio's answer)."""

    def query_devices(device=None, kind=None):
        if device is None and kind is None:
            return devices
        raise PortAudioError("Error querying device -1")

    return types.SimpleNamespace(query_devices=query_devices, PortAudioError=PortAudioError)


def test_no_default_input_device_is_said_plainly() -> None:
    with pytest.raises(HostError) as info:
        input_device(_sounddevice([{"name": "HDMI out", "max_input_channels": 0}]))
    message = str(info.value)
    assert "no default audio input" in message and "PortAudio sees no input" in message
    assert "--device" in message and "--backend jack" in message
    assert "None" not in message and "-1" not in message


def test_an_unknown_device_names_those_there_are() -> None:
    with pytest.raises(HostError) as info:
        input_device(_sounddevice([{"name": "USB mic", "max_input_channels": 1}]), "studio")
    assert "'studio'" in str(info.value) and "'USB mic'" in str(info.value)
