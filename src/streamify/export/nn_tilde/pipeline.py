"""The export pipeline of an nn~ file: convert, tune, wrap, script, check as nn~ calls it, write.

:func:`export_nn_tilde` converts each method with :func:`streamify.convert`, wraps the
streaming models in one module that follows nn~'s contract (:mod:`.module`, its class made
by :mod:`.codegen`; see ``docs/export.md``), streams them the way nn~ does at every allowed
buffer size and batch size 1 and 2 (:mod:`streamify.export.nn_contract`), and writes the
scripted module from a fresh-stream state, with its metadata (:mod:`.metadata`).
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from streamify.export.chaining import StartsAtSignal, starts_at_signal
from streamify.export.files import write_atomically
from streamify.export.methods import (
    ConvertedMethod,
    MethodExample,
    check_method_name,
    convert_methods,
    extra_latency_samples,
    nn_tilde_sizes,
)
from streamify.export.nn_contract import ContractReport, check_nn_contract
from streamify.export.nn_tilde.codegen import wrapper_class
from streamify.export.nn_tilde.metadata import EXTRA_FILE, file_info, flat_info
from streamify.export.nn_tilde.module import RESERVED, NnTildeModule
from streamify.export.progress import stage
from streamify.layers.base import StreamingError
from streamify.native import make_portable

#: buffer sizes nn~ offers (powers of two); 4096 is its default
NN_TILDE_SIZES = (256, 8192)
NN_TILDE_DEFAULT_BUFFER = 4096
#: TorchScript is what nn~ loads: its deprecation notice is not the user's concern here
_JIT_DEPRECATED = r".*torch\.jit\..* is deprecated"


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
            check_method_name(name, RESERVED, where)
        converted = convert_methods(model, example, methods, examples, where)
    else:
        for method in converted:
            check_method_name(method.name, RESERVED, where)
    if tune_buffers:
        stage(f"tuning the convs for buffers of {', '.join(str(n) for n in tune_buffers)} samples (timing)")
        _tune_methods(converted, tune_buffers, tune_batches, where)
    for method in converted:  # the file must load in any libtorch: PyTorch's products only
        make_portable(method.stream)
    all_sizes = [nn_tilde_sizes(m, where, *NN_TILDE_SIZES) for m in converted]
    scripted = _scripted(_wrapper(converted, wrapper_base, sample_rate, labels), where)
    reports = _check_methods(scripted, converted, all_sizes, where)
    scripted.reset_streams()
    if before_save is not None:
        before_save(scripted)
    info = file_info(converted, sample_rate, reports)
    info.update(extra_info or {})
    scripted.streamify_info = flat_info(info)
    _check_fresh(scripted, where)
    _save(scripted, info, path, where)
    return info


def _wrapper(
    converted: Sequence[ConvertedMethod],
    base: type,
    sample_rate: Optional[int],
    labels: Optional[Mapping[str, Tuple[List[str], List[str]]]],
) -> nn.Module:
    """The file's module, not yet scripted: the streams, nn~'s ``METHOD_params`` and the inlet/outlet labels."""
    cls = wrapper_class(converted, base)
    # a method fed by another method's output (decode after encode) starts where that signal starts (chaining.py)
    streams = [StartsAtSignal(m.stream) if starts_at_signal(m) else m.stream for m in converted]
    wrapper = cls(streams, [m.name for m in converted], int(sample_rate or 0), {})
    for method in converted:
        params = [method.in_channels, method.in_ratio, method.out_channels, method.out_ratio]
        wrapper.register_buffer(f"{method.name}_params", torch.tensor(params, dtype=torch.long))
        inputs, outputs = (labels or {}).get(method.name, (None, None))
        inputs = inputs or [f"(signal) input {i}" for i in range(method.in_channels)]
        setattr(wrapper, f"{method.name}_input_labels", inputs)
        outputs = outputs or [f"(signal) output {i}" for i in range(method.out_channels)]
        setattr(wrapper, f"{method.name}_output_labels", outputs)
    return wrapper.eval()


def _scripted(wrapper: nn.Module, where: str) -> torch.jit.ScriptModule:
    stage("compiling the file (TorchScript)")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_JIT_DEPRECATED, category=DeprecationWarning)
            return torch.jit.script(wrapper)
    except Exception as error:
        raise StreamingError(f"streamify: {where}: the wrapper does not compile with TorchScript: {error}") from error


def _check_methods(
    scripted: torch.jit.ScriptModule, converted: Sequence[ConvertedMethod], all_sizes: Sequence[List[int]], where: str
) -> List[ContractReport]:
    """Each scripted method streamed as nn~ calls it, against its offline model (:func:`check_nn_contract`)."""
    reports: List[ContractReport] = []
    for method, sizes in zip(converted, all_sizes):
        call = getattr(scripted, method.name)
        stage(f"checking {method.name} as nn~ calls it (buffers {sizes[0]} to {sizes[-1]}, batch 1 and 2)")

        def extra_frames(n: int, method: ConvertedMethod = method) -> int:
            return extra_latency_samples(method, n) // method.out_ratio

        reports.append(check_nn_contract(method, call, scripted.reset_streams, sizes, where, None, extra_frames))
    return reports


def _save(scripted: torch.jit.ScriptModule, info: Mapping[str, object], path: Union[str, Path], where: str) -> None:
    """``scripted`` with ``info`` as its extra file, saved into memory, then written through a temporary file and
    a rename: a failed write (disk full, a size limit) raises and leaves the old file intact, where libtorch's own
    writer aborts or truncates."""
    stage(f"writing {path}")
    data = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_JIT_DEPRECATED, category=DeprecationWarning)
        torch.jit.save(scripted, data, _extra_files={EXTRA_FILE: json.dumps(info, indent=2)})
    write_atomically(path, data.getvalue(), where)


def _check_fresh(module: torch.jit.ScriptModule, where: str) -> None:
    """Every stream of the scripted module is fresh: no batch, empty caches."""
    for name, sub in module.named_modules():
        if hasattr(sub, "stream_batch") and int(sub.stream_batch) != 0:
            raise StreamingError(f"streamify: {where}: internal error: {name} is not reset before saving")
