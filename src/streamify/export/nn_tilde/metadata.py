"""The metadata of an nn~ file: written as JSON inside it, read back without running it, shown as a table.

:func:`file_info` is what :func:`~.pipeline.export_nn_tilde` writes (``extra/streamify.json`` in the
archive, and flat in the module's ``get_streamify_info()``); :func:`read_info` reads it with
:mod:`zipfile`; :func:`describe_file` shows a file's methods (``streamify info``), for ``.onnx`` and
``.nm`` files through their own modules.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Union

import torch

from streamify._version import __version__
from streamify.export.chaining import starts_at_signal
from streamify.export.methods import ConvertedMethod, extra_latency_samples, method_info
from streamify.export.nn_contract import ContractReport
from streamify.layers.base import StreamingError

#: name of the JSON metadata stored in the file's ``extra/`` folder (``torch.jit.load(..., _extra_files=...)``)
EXTRA_FILE = "streamify.json"


def file_info(
    methods: Sequence[ConvertedMethod], sample_rate: Optional[int], reports: Sequence[ContractReport]
) -> Dict[str, object]:
    """The file's JSON metadata: versions, sample rate, and per method its rates, delay, checks and buffering."""
    return {
        "format": "nn~ TorchScript",
        "streamify_version": __version__,
        "torch_version": torch.__version__,
        "sample_rate": sample_rate,
        "methods": {
            m.name: {
                **method_info(m, sample_rate),
                "checked_buffer_sizes": r.buffer_sizes,
                # any host buffer size is taken; sizes that are not multiples of the buffer multiple add latency
                "buffering_latency_samples": {str(n): extra_latency_samples(m, n) for n in r.buffer_sizes},
                # frames at the start of a fresh stream that differ from offline (reflect/replicate padding)
                "start_differs_frames": r.warmup_frames,
                "max_rel_error": float(f"{r.max_rel_error:.3g}"),
                # a fresh stream (per batch item) waits for its first input frame that is not all zeros
                "starts_at_signal": starts_at_signal(m),
            }
            for m, r in zip(methods, reports)
        },
        "host_latency_note": "nn~ adds 2 * buffer size - host block size samples on top of each method's delay",
        "buffering_latency_rule": "a stream whose first buffer holds n samples lags by delay_samples + "
        "U - gcd(n, U) samples, U = buffer_multiple_samples (0 extra when n is a multiple of U)",
    }


def flat_info(info: Mapping[str, object]) -> Dict[str, str]:
    """The metadata as ``Dict[str, str]`` for TorchScript: ``"encode.delay_samples": "1024"``."""
    flat: Dict[str, str] = {
        "streamify_version": str(info["streamify_version"]),
        "torch_version": str(info["torch_version"]),
        "sample_rate": "" if info["sample_rate"] is None else str(info["sample_rate"]),
        "methods": ",".join(info["methods"]),  # type: ignore[arg-type]
    }
    for name, fields in info["methods"].items():  # type: ignore[union-attr]
        for key, value in fields.items():
            if isinstance(value, dict):
                flat[f"{name}.{key}"] = ",".join(f"{k}:{v}" for k, v in value.items())
            elif isinstance(value, list):
                flat[f"{name}.{key}"] = ",".join(str(v) for v in value)
            else:
                flat[f"{name}.{key}"] = str(value)
    return flat


def read_info(path: Union[str, Path]) -> Dict[str, object]:
    """The metadata of a file written by :func:`export_nn_tilde`, read without running the file.

    A TorchScript file is a program: loading it runs its code (``__setstate__`` methods among
    others). Its metadata is a JSON file inside the zip archive (``<name>/extra/streamify.json``),
    read here with :mod:`zipfile`; nothing of the file is executed.

    Raises:
        StreamingError: the file is missing, not a TorchScript archive, or not written by streamify.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.count("/") == 2 and n.endswith(f"/extra/{EXTRA_FILE}")]
            if not names:
                raise StreamingError(f"streamify: {path} was not written by streamify (no extra/{EXTRA_FILE} inside)")
            text = archive.read(names[0]).decode("utf-8")
            damaged = archive.testzip()  # every member against its CRC: a damaged file fails here, not in a host
            if damaged is not None:
                raise StreamingError(
                    f"streamify: {path} is damaged: its member {damaged} does not match its checksum (the file was "
                    "altered or copied incompletely); export the model again"
                )
    except FileNotFoundError as error:
        raise StreamingError(f"streamify: {path}: no such file") from error
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError) as error:
        raise StreamingError(
            f"streamify: {path} is not a TorchScript file (not a readable zip archive: {error}); "
            "export it again with streamify export"
        ) from error
    try:
        info = json.loads(text)
    except json.JSONDecodeError as error:
        raise StreamingError(f"streamify: {path}: its {EXTRA_FILE} is not valid JSON ({error})") from error
    if not isinstance(info, dict) or not isinstance(info.get("methods"), dict):
        raise StreamingError(f"streamify: {path}: its {EXTRA_FILE} does not describe any method")
    return info


def _buffering(extra: Optional[Mapping[str, int]], multiple: int) -> str:
    """The rule of the latency added by host buffers of ``n`` samples, ``M - gcd(n, M)`` with ``M`` = ``multiple``,
    with the recorded sizes that add some as examples: ``"2048 - gcd(n, 2048) (0 for multiples of 2048), e.g.
    256: +1792, 512: +1536"``."""
    rule = f"{multiple} - gcd(n, {multiple}) for a buffer of n (0 for multiples of {multiple})"
    added = [f"{n}: +{v}" for n, v in (extra or {}).items() if int(v) > 0]
    return rule + (", e.g. " + ", ".join(added) if added else "")


def describe_file(path: Union[str, Path]):
    """A table of a ``.ts`` file's methods, rates, delays and versions (for ``streamify info model.ts``)."""
    from rich.table import Table

    if str(path).lower().endswith(".onnx"):
        from streamify.export.onnx_export import describe_onnx

        return describe_onnx(path)
    if str(path).lower().endswith(".nm"):
        from streamify.export.neutone import describe_neutone

        return describe_neutone(path)
    info = read_info(path)
    sample_rate = info.get("sample_rate")
    table = Table(title=f"{Path(path).name}: nn~ model (streamify {info.get('streamify_version')})")
    for column in ("method", "in ch", "in ratio", "out ch", "out ratio", "delay", "buffer multiple", "checked sizes"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for name, fields in info["methods"].items():  # type: ignore[union-attr]
        delay = f"{fields['delay_samples']} samples"
        if sample_rate:
            delay += f" ({1000.0 * fields['delay_samples'] / sample_rate:.2f} ms)"
        table.add_row(
            name,
            str(fields["in_channels"]),
            str(fields["in_ratio"]),
            str(fields["out_channels"]),
            str(fields["out_ratio"]),
            delay,
            f"{fields['buffer_multiple_samples']} samples",
            ",".join(str(s) for s in fields.get("checked_buffer_sizes", [])),
        )
    buffering = [
        f"{name}: {_buffering(fields.get('buffering_latency_samples'), int(fields['buffer_multiple_samples']))}"
        for name, fields in info["methods"].items()  # type: ignore[union-attr]
    ]
    table.caption = (
        f"sample rate: {sample_rate or 'unknown'} Hz; torch {info.get('torch_version')}; "
        "nn~ adds 2 x buffer - block size samples of latency on top of the delays.\n"
        "Any host buffer size is taken; latency added by buffer size (samples): " + "; ".join(buffering)
    )
    return table
