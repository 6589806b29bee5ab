"""TorchScript files for nn~ (Max/MSP, PureData): the model contract, the self-checks, the file's metadata.

:func:`export_nn_tilde` converts each method with :func:`streamify.convert`, wraps the
streaming models in one module that follows nn~'s contract (see ``docs/export.md``),
streams them the way nn~ does at every allowed buffer size and batch size 1 and 2,
and writes the scripted module from a fresh-stream state. The wrapper's methods have
the names of the exported methods; their source is generated and registered with
:mod:`linecache` so that TorchScript can compile them.
"""

from __future__ import annotations

import io
import itertools
import json
import linecache
import warnings
import zipfile
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from streamify._version import __version__
from streamify.export.chaining import StartsAtSignal, starts_at_signal
from streamify.export.dispatch import StreamInterface, call_layers_through_interface
from streamify.export.files import write_atomically
from streamify.export.host_contract import ContractReport, check_host_contract
from streamify.export.methods import (
    ConvertedMethod,
    MethodExample,
    check_method_name,
    convert_methods,
    extra_latency_samples,
    method_info,
    nn_tilde_sizes,
)
from streamify.export.progress import stage
from streamify.export.sharing import share_equal_constants
from streamify.layers.base import StreamingError, StreamingModule
from streamify.native import make_portable
from streamify.runtime.buffering import AnyLengthStream

#: name of the JSON metadata stored in the file's ``extra/`` folder (``torch.jit.load(..., _extra_files=...)``)
EXTRA_FILE = "streamify.json"
#: nn~ attribute type codes of ``A_params`` (bool, int, float, str)
TYPE_BOOL, TYPE_INT, TYPE_FLOAT, TYPE_STR = 0, 1, 2, 3
#: buffer sizes nn~ offers (powers of two); 4096 is its default
NN_TILDE_SIZES = (256, 8192)
NN_TILDE_DEFAULT_BUFFER = 4096

_counter = itertools.count()


class _BufferedStream(AnyLengthStream):
    """An :class:`AnyLengthStream` whose model is called through :class:`StreamInterface`: its forward and
    reset compile once each, as functions of their own, instead of being inlined into every caller."""


# set as an object, not a string (this module postpones annotations): TorchScript reads the type from it
_BufferedStream.__annotations__ = {"stream": StreamInterface, "queued": List[int]}


class NnTildeModule(nn.Module):
    """The part of the exported module that does not depend on the method names.

    Attributes (TorchScript): ``_methods``, ``_attributes`` (``get_methods()``,
    ``get_attributes()``), ``sample_rate`` (the model's, 0 if unknown), ``sr`` (the
    host's, from ``set_sample_rate``), ``streamify_info`` (``get_streamify_info()``),
    ``pending_reset`` / ``pending_items`` (resets asked by the host, applied by each
    method at its next call, on the audio thread).
    """

    def __init__(
        self, streams: Sequence[StreamingModule], names: Sequence[str], sample_rate: int, info: Dict[str, str]
    ) -> None:
        super().__init__()
        # one copy of each weight in the file, one compiled function per layer type at load (see dispatch.py)
        share_equal_constants(streams)
        for index, (stream, name) in enumerate(zip(streams, names)):
            stream.reset()
            call_layers_through_interface(stream)
            # any host buffer length: accumulation up to the buffer multiple, validation before any reset
            # scripted here: TorchScript cannot script a submodule typed by an interface from within its parent
            with warnings.catch_warnings():
                warnings.filterwarnings(
                    "ignore", message=r".*torch\.jit\..* is deprecated", category=DeprecationWarning
                )
                buffered = _BufferedStream(torch.jit.script(stream), name=f"{stream.layer_name} ({name})")
                setattr(self, f"stream_{index}", torch.jit.script(buffered))
        self._methods: List[str] = list(names)
        self._attributes: List[str] = ["reset", "reset_item"]
        self.register_buffer("reset_params", torch.tensor([TYPE_BOOL], dtype=torch.long))
        self.register_buffer("reset_item_params", torch.tensor([TYPE_INT], dtype=torch.long))
        self.sample_rate: int = int(sample_rate)
        self.sr: int = int(sample_rate)
        self.streamify_info: Dict[str, str] = dict(info)
        self.pending_reset: List[bool] = [False for _ in names]
        self.pending_items: List[List[int]] = [[] for _ in names]
        self.warmed: bool = False

    @torch.jit.export
    def get_attributes(self) -> List[str]:
        """Settable attributes: ``reset`` (bool, resets every stream) and ``reset_item`` (int, one batch item)."""
        return self._attributes

    @torch.jit.export
    def get_reset(self) -> bool:
        return False

    @torch.jit.export
    def set_reset(self, value: bool) -> int:
        """``set reset 1`` from the host: every stream of every method restarts fresh at its next buffer."""
        if value:
            for i in range(len(self.pending_reset)):
                self.pending_reset[i] = True
        return 0

    @torch.jit.export
    def get_reset_item(self) -> int:
        return -1

    @torch.jit.export
    def set_reset_item(self, index: int) -> int:
        """Restart batch item ``index`` (an mc.nn~ channel) of every method at its next buffer; -1 if negative."""
        if index < 0:
            return -1
        for i in range(len(self.pending_items)):
            self.pending_items[i].append(index)
        return 0

    @torch.jit.export
    def set_sample_rate(self, sample_rate: int) -> None:
        """The host's sample rate (recorded; the model runs at the rate it was trained for, ``get_sample_rate()``)."""
        self.sr = sample_rate

    @torch.jit.export
    def get_sample_rate(self) -> int:
        """The sample rate the model was exported for (0 if unknown)."""
        return self.sample_rate

    @torch.jit.export
    def get_streamify_info(self) -> Dict[str, str]:
        """streamify version, sample rate, and per method its delay, ratios and buffer multiple."""
        return self.streamify_info

    def before_call(self, index: int, x: Tensor) -> Tensor:
        """The host's buffer for method ``index``, before its stream (subclasses adapt it; here unchanged)."""
        return x

    def after_call(self, index: int, y: Tensor) -> Tensor:
        """Method ``index``'s stream output, before it is returned (subclasses adapt it; here unchanged)."""
        return y


_METHOD_TEMPLATE = '''
    @torch.jit.export
    def {name}(self, x: Tensor) -> Tensor:
        """Stream one nn~ buffer through {name}: [batch, {in_channels}, n / {in_ratio}] -> [batch, {out_channels}, n / {out_ratio}].

        Any n (the host's choice) is taken; the stream validates the buffer before any reset or state change.
        """
        if self.pending_reset[{index}]:
            self.pending_reset[{index}] = False
            self.pending_items[{index}] = torch.jit.annotate(List[int], [])
            self.stream_{index}.reset(None)
        if len(self.pending_items[{index}]) > 0:
            items = self.pending_items[{index}]
            self.pending_items[{index}] = torch.jit.annotate(List[int], [])
            self.stream_{index}.reset(items)  # queued; items outside the batch are ignored
        return self.after_call({index}, self.stream_{index}(self.before_call({index}, x)))
'''

_RESET_TEMPLATE = '''
    @torch.jit.export
    def get_methods(self) -> List[str]:
        """The methods nn~ may call (each has a ``METHOD_params`` buffer). The first call warms the file up
        (``warm_up()``): nn~ calls this when it loads the file, before any audio."""
        if not self.warmed:
            self.warm_up()
        return self._methods

    @torch.jit.export
    def warm_up(self) -> None:
        """Compile every method's stream now, so that the host's first calls run at full speed.

        TorchScript's profiling executor profiles a function at its first call and optimises it at the
        second, which takes seconds for a large model: a host calling the methods first on its audio
        thread would drop out. Each stream (called through an interface, so that the host's calls reach
        the same compiled function) runs twice on silence at its buffer multiple and twice at its
        smallest length, its resets run, and everything is reset: the streams are fresh again.
        """
        self.warmed = True
        device = self.reset_params.device
        with torch.no_grad():
{warm_body}
        self.reset_streams()

    @torch.jit.export
    def reset_streams(self) -> None:
        """Every stream of every method back to a fresh stream, now."""
{body}

    @torch.jit.export
    def reset_items(self, items: List[int]) -> None:
        """Batch items ``items`` of every method back to a fresh stream (at the next call with no input held back;
        items outside a stream's batch are ignored)."""
{items_body}
'''


def _wrapper_class(methods: Sequence[ConvertedMethod], base: Optional[type] = None) -> type:
    """Generate the module class whose methods carry the exported names (TorchScript reads their source), a
    subclass of ``base`` (:class:`NnTildeModule` or a subclass of it)."""
    parts = [
        "class StreamifyNnTilde(Base):\n"
        '    """An nn~ model exported by streamify."""\n\n'
        # TorchScript reads attribute types from the class's own annotations
        "    _methods: List[str]\n"
        "    _attributes: List[str]\n"
        "    sample_rate: int\n"
        "    sr: int\n"
        "    streamify_info: Dict[str, str]\n"
        "    pending_reset: List[bool]\n"
        "    pending_items: List[List[int]]\n"
        "    warmed: bool\n"
    ]
    # each stream is typed by an interface: calls to it are not inlined into the methods' graphs, so that
    # warm_up() and the host's calls run (and compile) the same function
    parts += [f"    stream_{index}: StreamInterface\n" for index in range(len(methods))]
    for index, method in enumerate(methods):
        parts.append(
            _METHOD_TEMPLATE.format(
                name=method.name,
                index=index,
                in_channels=method.in_channels,
                in_ratio=method.in_ratio,
                out_channels=method.out_channels,
                out_ratio=method.out_ratio,
            )
        )
    body = []
    items_body = []
    for index in range(len(methods)):
        body += [
            f"        self.pending_reset[{index}] = False",
            f"        self.pending_items[{index}] = torch.jit.annotate(List[int], [])",
            f"        self.stream_{index}.reset(None)",
        ]
        items_body += [f"        self.stream_{index}.reset(items)"]
    warm_body = []
    for index, method in enumerate(methods):
        multiple = int(method.stream.buffer_multiple)
        lengths = sorted({multiple, int(method.stream.ratio_num)})
        warm_body += [
            f"            for length in {lengths}:",
            f"                self.stream_{index}.reset(None)",
            "                for _ in range(2):",
            # not silence: a method that starts at its input's signal (chaining.py) would not run its model on it
            f"                    self.stream_{index}(torch.full((1, {method.in_channels}, length), 0.01, device=device))",
            f"            self.stream_{index}.reset([0])",
            f"            self.stream_{index}.reset(None)",
        ]
    parts.append(
        _RESET_TEMPLATE.format(body="\n".join(body), items_body="\n".join(items_body), warm_body="\n".join(warm_body))
    )
    source = "".join(parts)
    filename = f"<streamify-nn-tilde-{next(_counter)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {
        "__name__": "streamify_nn_tilde_generated",
        "torch": torch,
        "Tensor": Tensor,
        "List": List,
        "Dict": Dict,
        "Base": base or NnTildeModule,
        "StreamInterface": StreamInterface,
    }
    exec(compile(source, filename, "exec", dont_inherit=True), namespace)  # noqa: S102 - our own generated source
    return namespace["StreamifyNnTilde"]


_RESERVED = (
    "get_methods",
    "warm_up",
    "warmed",
    "get_attributes",
    "get_reset",
    "set_reset",
    "get_reset_item",
    "set_reset_item",
    "set_sample_rate",
    "get_sample_rate",
    "get_streamify_info",
    "reset_streams",
    "reset_items",
    "sample_rate",
    "sr",
    "streamify_info",
    "pending_reset",
    "pending_items",
    "reset",
    "reset_item",
    "training",
)


def _file_info(methods: Sequence[ConvertedMethod], sample_rate: Optional[int], reports) -> Dict[str, object]:
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


def _flat_info(info: Mapping[str, object]) -> Dict[str, str]:
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


def _tune_methods(converted: Sequence, buffers: Sequence[int], batches: Sequence[int], where: str) -> None:
    """Tune each method's stream for the nn~ buffer sizes (samples) it accepts."""
    from streamify.tuning import tune

    for method in converted:
        stream = method.stream
        multiple = int(stream.buffer_multiple)
        frames = [int(n) // method.in_ratio for n in buffers if int(n) % method.in_ratio == 0]
        frames = [f for f in frames if f > 0 and (f * method.in_ratio) % method.out_ratio == 0]
        # the stream sees what the file accumulates: whole multiples of its buffer multiple
        frames = sorted({-(-f // multiple) * multiple for f in frames})
        if not frames:
            raise StreamingError(
                f"streamify: {where}: method {method.name!r} accepts none of the buffer sizes {list(buffers)} to tune "
                f"for; use multiples of {method.in_ratio * stream.buffer_multiple} samples"
            )
        tune(stream, frames, list(batches), native=False)  # nn~'s libtorch cannot load our kernel


def export_nn_tilde(
    model: nn.Module,
    path: Union[str, Path],
    example: Tensor,
    methods: Sequence[str] = ("forward",),
    sample_rate: Optional[int] = None,
    examples: Optional[Mapping[str, MethodExample]] = None,
    tune_buffers: Optional[Sequence[int]] = None,
    tune_batches: Sequence[int] = (1,),
    wrapper_base: type = NnTildeModule,
    labels: Optional[Mapping[str, Tuple[List[str], List[str]]]] = None,
    extra_info: Optional[Mapping[str, object]] = None,
    converted: Optional[Sequence[ConvertedMethod]] = None,
    before_save: Optional[Callable[[torch.jit.ScriptModule], None]] = None,
) -> Dict[str, object]:
    """Write a TorchScript file that nn~ loads and streams, exactly.

    Args:
        model: a float32 model written with plain ``torch.nn`` (each method is converted
            with :func:`streamify.convert`), or a :class:`streamify.StreamingModel` (one method).
        path: the ``.ts`` file to write.
        example: an audio input ``[batch, channels, time]`` for the conversion.
        methods: the methods to export (``("encode", "decode", "forward")``...). A method
            that does not accept the audio example takes the output of the first earlier
            method it accepts (``decode`` takes ``encode``'s latents, at its rate).
        sample_rate: the model's sample rate, recorded in the file (latencies in ms).
        examples: explicit examples per method: a tensor, or ``(tensor, in_ratio)``.
        tune_buffers: nn~ buffer sizes (samples) to tune each method's convs for, by timing
            (:func:`streamify.tune`) on this machine, with batch sizes ``tune_batches``;
            sizes a method does not accept are skipped. None: untuned defaults.
        wrapper_base: the class the file's module derives from: :class:`NnTildeModule` or a subclass that
            adds attributes and adapts buffers (``before_call`` / ``after_call``), e.g. RAVE's.
        labels: per method, its inlet and outlet labels (default ``(signal) input i`` / ``output i``).
        extra_info: more JSON metadata for the file (e.g. the model it came from).
        converted: the methods converted already (:func:`~streamify.export.methods.convert_methods`), for a
            caller that converts with options of its own; ``model``, ``example``, ``methods`` and ``examples``
            are then not used.
        before_save: called with the scripted module after every check passed and its streams were reset,
            just before it is saved (e.g. to switch on noise that the checks ran without).

    Returns:
        The metadata written into the file (also in its extra file ``streamify.json``).

    Raises:
        StreamingError: where a method cannot stream, or breaks nn~'s contract at one of
            the buffer sizes 256 ... 8192 it allows or with batch 1 or 2, naming the
            method, the buffer size and the reason. Nothing is written then.
    """
    where = "export_nn_tilde"
    if sample_rate is not None and int(sample_rate) <= 0:
        raise StreamingError(f"streamify: {where}: sample_rate must be positive, got {sample_rate}")
    if converted is None:
        for name in [methods] if isinstance(methods, str) else methods:
            check_method_name(name, _RESERVED, where)
        converted = convert_methods(model, example, methods, examples, where)
    else:
        for method in converted:
            check_method_name(method.name, _RESERVED, where)
    if tune_buffers:
        stage(f"tuning the convs for buffers of {', '.join(str(n) for n in tune_buffers)} samples (timing)")
        _tune_methods(converted, tune_buffers, tune_batches, where)
    for method in converted:  # the file must load in any libtorch: PyTorch's products only
        make_portable(method.stream)
    all_sizes = [nn_tilde_sizes(m, where, *NN_TILDE_SIZES) for m in converted]
    cls = _wrapper_class(converted, wrapper_base)
    # a method fed by another method's output (decode after encode) starts where that signal starts (chaining.py)
    streams = [StartsAtSignal(m.stream) if starts_at_signal(m) else m.stream for m in converted]
    wrapper = cls(streams, [m.name for m in converted], int(sample_rate or 0), {})
    for method in converted:
        params = [method.in_channels, method.in_ratio, method.out_channels, method.out_ratio]
        wrapper.register_buffer(f"{method.name}_params", torch.tensor(params, dtype=torch.long))
        inputs, outputs = (labels or {}).get(method.name, (None, None))
        setattr(
            wrapper, f"{method.name}_input_labels", inputs or [f"(signal) input {i}" for i in range(method.in_channels)]
        )
        setattr(
            wrapper,
            f"{method.name}_output_labels",
            outputs or [f"(signal) output {i}" for i in range(method.out_channels)],
        )
    wrapper.eval()
    stage("compiling the file (TorchScript)")
    try:
        with warnings.catch_warnings():
            # TorchScript is what nn~ loads: its deprecation notice is not the user's concern here
            warnings.filterwarnings("ignore", message=r".*torch\.jit\..* is deprecated", category=DeprecationWarning)
            scripted = torch.jit.script(wrapper)
    except Exception as error:
        raise StreamingError(f"streamify: {where}: the wrapper does not compile with TorchScript: {error}") from error

    reports: List[ContractReport] = []
    for method, sizes in zip(converted, all_sizes):
        call = getattr(scripted, method.name)
        stage(f"checking {method.name} as nn~ calls it (buffers {sizes[0]} to {sizes[-1]}, batch 1 and 2)")

        def extra_frames(n: int, method: ConvertedMethod = method) -> int:
            return extra_latency_samples(method, n) // method.out_ratio

        reports.append(check_host_contract(method, call, scripted.reset_streams, sizes, where, None, extra_frames))
    scripted.reset_streams()
    if before_save is not None:
        before_save(scripted)
    info = _file_info(converted, sample_rate, reports)
    info.update(extra_info or {})
    flat = _flat_info(info)
    scripted.streamify_info = flat
    _check_fresh(scripted, where)
    # saved into memory, then written through a temporary file and a rename: a failed write (disk full, a
    # size limit) raises and leaves the old file intact, where libtorch's own writer aborts or truncates
    stage(f"writing {path}")
    data = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\..* is deprecated", category=DeprecationWarning)
        torch.jit.save(scripted, data, _extra_files={EXTRA_FILE: json.dumps(info, indent=2)})
    write_atomically(path, data.getvalue(), where)
    return info


def _check_fresh(module: torch.jit.ScriptModule, where: str) -> None:
    """Every stream of the scripted module is fresh: no batch, empty caches."""
    for name, sub in module.named_modules():
        if hasattr(sub, "stream_batch") and int(sub.stream_batch) != 0:
            raise StreamingError(f"streamify: {where}: internal error: {name} is not reset before saving")


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
