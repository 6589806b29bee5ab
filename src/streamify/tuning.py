"""Choose, by timing inside the model, how each conv computes its few frames per call.

A conv that sees few frames per call runs as a matrix product (:mod:`streamify.layers.conv_kernels`).
Which product reads its weights fastest depends on the row count, the weight's shape, the
CPU, the BLAS and what the rest of the model leaves in the caches, so no fixed rule is best
everywhere. :func:`tune` streams noise through the model at the buffer and batch sizes a host
will use, times every candidate product of every conv in place (all layers at once, rounds
interleaved), and writes the fastest into each layer's ``kernel_table``. The choice only
changes the order of floating-point sums, never the math; it is kept by ``torch.jit.script``,
``torch.jit.save``, pickling and the nn~ export. Where :mod:`streamify.native` can build its
compiled kernel, it is one more candidate (exports replace it by PyTorch's products).
"""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from streamify.layers.base import StreamingError, StreamingModule
from streamify.layers.conv_kernels import KERNEL_LABELS, ConvKernel, TorchMatmul, choose_kernel
from streamify.native import (
    NativeMatmul,
    can_run_native,
    kernel_layers,
    load,
    make_portable,
    unavailable_reason,
    use_native,
)

#: row counts above this are left to the generic kernels (gathering that many windows costs more than it saves)
MAX_TUNED_ROWS = 1024


@dataclass
class TunedLayer:
    """One conv at one row count: median ms per call of each product tried, and the one kept."""

    layer: str
    rows: int
    chosen: str
    #: the product the layer used before tuning
    default: str
    ms: Dict[str, float] = field(default_factory=dict)


@dataclass
class WholeCallCheck:
    """One (batch, buffer): whole calls with the tables before and after tuning it, alternated."""

    batch: int
    buffer: int
    #: median ms per call with the tables as they were before this (batch, buffer) was tuned
    before_ms: float
    #: median ms per call with the tuned tables
    tuned_ms: float
    #: False when the tuned tables were slower by more than ``min_gain`` and were undone
    kept: bool


@dataclass
class TuneReport:
    """What :func:`tune` measured and chose, per conv and row count."""

    layers: List[TunedLayer]
    #: whether the native kernel (:mod:`streamify.native`) was a candidate
    native: bool = False
    #: why it was not, when it was asked for or could have been ("" otherwise)
    native_note: str = ""
    #: per (batch, buffer), the whole-call comparison that keeps or undoes its choices
    whole_calls: List[WholeCallCheck] = field(default_factory=list)

    @property
    def saved_ms(self) -> float:
        """Sum over layers of (default product's median - chosen product's median), in ms per call."""
        return sum(row.ms[row.default] - row.ms[row.chosen] for row in self.layers)

    def table(self) -> str:
        """A plain-text table: layer, rows, the median of each product, the choice."""
        names = [choice.label for choice in ConvKernel]
        lines = ["layer | rows | " + " | ".join(names) + " | chosen"]
        for row in self.layers:
            cells = [f"{row.ms[name]:.3f}" if name in row.ms else "-" for name in names]
            lines.append(f"{row.layer} | {row.rows} | " + " | ".join(cells) + f" | {row.chosen}")
        return "\n".join(lines)


def _rows(layer: nn.Module, x: Tensor) -> int:
    """Rows of the layer's product for input ``x`` ``[batch, channels, n]``: batch x frames it computes, one per
    frame of its slower side (a conv's output frames, a transposed conv's input frames)."""
    per_row = max(layer.ratio, 1)  # input frames per output frame, at least 1
    return x.size(0) * int(x.size(-1) // per_row)


def _candidates(layer: nn.Module, rows: int) -> List[int]:
    """The products worth timing for ``layer`` at ``rows`` rows (values of :class:`ConvKernel`)."""
    if rows > MAX_TUNED_ROWS:
        return []
    if layer.groups > 1:  # grouped convs have one product: a batched one over the groups
        return [ConvKernel.GENERIC.value, ConvKernel.ROWS_LEFT.value]
    options = [ConvKernel.GENERIC, ConvKernel.ROWS_LEFT, ConvKernel.WEIGHT_LEFT, ConvKernel.BLOCKED, ConvKernel.COLUMNS]
    if isinstance(layer.matmul, NativeMatmul):
        options.append(ConvKernel.NATIVE)
    return [choice.value for choice in options]


def _native_wanted(native: Optional[bool]) -> Tuple[bool, str]:
    """Whether to offer the native kernel, and why not when it is not offered."""
    if native is False:
        return False, ""
    if load():
        return True, ""
    if native:
        raise StreamingError(
            f"streamify.tune: native=True, but the native products are unavailable ({unavailable_reason()}); "
            "install a C++ compiler (g++) or pass native=None to tune without them"
        )
    return False, f"native products unavailable: {unavailable_reason()}"


def _as_list(sizes: Union[int, Sequence[int]]) -> List[int]:
    return [int(sizes)] if isinstance(sizes, int) else [int(s) for s in sizes]


def tune(
    model: nn.Module,
    buffer_sizes: Union[int, Sequence[int]],
    batch_sizes: Union[int, Sequence[int]] = 1,
    rounds: int = 7,
    seed: int = 0,
    min_gain: float = 0.05,
    native: Optional[bool] = None,
    check_calls: bool = True,
) -> TuneReport:
    """Pick the fastest product of every conv of ``model`` for each buffer and batch size.

    ``model`` is an eager streaming model (:func:`streamify.convert`'s result or any
    :class:`~streamify.layers.StreamingModule`); ``buffer_sizes`` are input lengths in the
    model's input frames (samples for audio input), ``batch_sizes`` the batch sizes a host
    will send. Each (buffer, batch) streams ``rounds`` calls per candidate product of noise;
    the streams are reset before and after. A layer leaves its default product only for one
    faster by more than ``min_gain`` (a fraction: timing noise must not decide); then whole
    calls with the new choices and with the earlier ones are timed in alternation, and the new
    ones are undone if they are slower by more than ``min_gain`` (a layer's own timing misses
    what its choice costs the layers after it; ``check_calls=False`` skips this). Script,
    freeze or export the model afterwards: the choices travel with it. ``native``: offer the
    compiled kernel of :mod:`streamify.native` (None: when it can be built; True: raise if it
    cannot; False: never). Returns what was measured and chosen.
    """
    if isinstance(model, torch.jit.ScriptModule):
        raise StreamingError(
            "streamify.tune: the model is a TorchScript module; tune the eager model, then script or export it"
        )
    if not isinstance(model, StreamingModule):
        raise StreamingError(
            f"streamify.tune: expected a streaming model (streamify.convert's result or a StreamingModule), "
            f"got {type(model).__name__}"
        )
    layers = kernel_layers(model)
    offer_native, native_note = _native_wanted(native)
    installed = []
    if offer_native:
        installed = [layer for layer in layers if can_run_native(layer) and not isinstance(layer.matmul, NativeMatmul)]
        for layer in installed:
            use_native(layer)
    channels = model.in_channels if model.in_channels > 0 else 1
    dtype = model.dtype_marker.dtype
    device = model.dtype_marker.device
    generator = torch.Generator().manual_seed(seed)
    shuffle = random.Random(seed)
    report: List[TunedLayer] = []
    checks: List[WholeCallCheck] = []
    for batch in _as_list(batch_sizes):
        for buffer in _as_list(buffer_sizes):
            model.reset()
            model._validate(torch.zeros(batch, channels, buffer, dtype=dtype, device=device))
            before = [dict(layer.kernel_table) for layer in layers]
            report += _tune_one(
                model, layers, batch, buffer, channels, dtype, device, rounds, min_gain, generator, shuffle
            )
            if check_calls:
                x = torch.randn(batch, channels, buffer, generator=generator, dtype=dtype).to(device)
                checks.append(_check_whole_calls(model, layers, before, x, 2 * rounds + 1, min_gain))
    model.reset()
    for layer in installed:  # layers that kept no native product script to portable code
        if ConvKernel.NATIVE.value not in layer.kernel_table.values():
            layer.matmul = TorchMatmul()
    return TuneReport(report, native=offer_native, native_note=native_note, whole_calls=checks)


def _check_whole_calls(
    model: StreamingModule,
    layers: List[nn.Module],
    before: List[Dict[int, int]],
    x: Tensor,
    pairs: int,
    min_gain: float,
) -> WholeCallCheck:
    """Time whole calls on ``x`` with the tables ``before`` and the tuned ones, alternated ``pairs``
    times; restore ``before`` when the tuned tables are slower by more than ``min_gain``."""
    tuned = [dict(layer.kernel_table) for layer in layers]
    spent: Tuple[List[float], List[float]] = ([], [])

    def use(tables: List[Dict[int, int]]) -> None:
        for layer, table in zip(layers, tables):
            layer.kernel_table = dict(table)

    model.reset()
    with torch.inference_mode():
        model(x)  # allocates the caches
        for _ in range(pairs):
            for slot, tables in enumerate((before, tuned)):
                use(tables)
                began = time.perf_counter()
                model(x)
                spent[slot].append(time.perf_counter() - began)
    before_ms, tuned_ms = (1e3 * statistics.median(times) for times in spent)
    kept = tuned_ms <= (1.0 + min_gain) * before_ms
    use(tuned if kept else before)
    return WholeCallCheck(batch=x.size(0), buffer=x.size(-1), before_ms=before_ms, tuned_ms=tuned_ms, kept=kept)


def _tune_one(
    model: StreamingModule,
    layers: List[nn.Module],
    batch: int,
    buffer: int,
    channels: int,
    dtype: torch.dtype,
    device: torch.device,
    rounds: int,
    min_gain: float,
    generator: torch.Generator,
    shuffle: random.Random,
) -> List[TunedLayer]:
    def noise() -> Tensor:
        return torch.randn(batch, channels, buffer, generator=generator, dtype=dtype).to(device)

    rows: Dict[int, int] = {}
    spent: Dict[Tuple[int, int], List[float]] = {}
    started: Dict[int, float] = {}
    chosen_now: Dict[int, int] = {}

    def before(module: nn.Module, inputs) -> None:
        rows[id(module)] = _rows(module, inputs[0])
        started[id(module)] = time.perf_counter()

    def after(module: nn.Module, inputs, output) -> None:
        key = (id(module), chosen_now.get(id(module), -1))
        spent.setdefault(key, []).append(time.perf_counter() - started[id(module)])

    handles = [layer.register_forward_pre_hook(before) for layer in layers]
    handles += [layer.register_forward_hook(after) for layer in layers]
    previous = {id(layer): dict(layer.kernel_table) for layer in layers}
    try:
        model.reset()
        with torch.inference_mode():
            model(noise())  # allocates the caches and records every layer's rows
            candidates = {id(layer): _candidates(layer, rows[id(layer)]) for layer in layers}
            widest = max((len(c) for c in candidates.values()), default=0)
            spent.clear()
            for _ in range(rounds):
                order = list(range(widest))
                shuffle.shuffle(order)
                for slot in order:
                    for layer in layers:
                        options = candidates[id(layer)]
                        if options:
                            choice = options[slot % len(options)]
                            layer.kernel_table[rows[id(layer)]] = choice
                            chosen_now[id(layer)] = choice
                    model(noise())
    finally:
        for handle in handles:
            handle.remove()
        for layer in layers:  # back to the earlier choices; the winners are written below
            layer.kernel_table = dict(previous[id(layer)])
    return _keep_fastest(layers, candidates, rows, spent, previous, min_gain)


def _keep_fastest(
    layers: List[nn.Module],
    candidates: Dict[int, List[int]],
    rows: Dict[int, int],
    spent: Dict[Tuple[int, int], List[float]],
    previous: Dict[int, Dict[int, int]],
    min_gain: float,
) -> List[TunedLayer]:
    """Write each layer's fastest product for its row count (its default unless another wins by ``min_gain``)."""
    results: List[TunedLayer] = []
    for layer in layers:
        options = candidates[id(layer)]
        if not options:
            continue
        count = rows[id(layer)]
        medians = {p: 1e3 * statistics.median(spent[(id(layer), p)]) for p in options}
        blocks = layer.weight_blocks() if hasattr(layer, "weight_blocks") else 1  # Conv1d: weight blocks
        default = choose_kernel(previous[id(layer)], count, layer.fast_path_rows, blocks)
        if default not in KERNEL_LABELS:  # a value that an earlier version's table holds: it runs rows-left
            default = ConvKernel.ROWS_LEFT.value
        best = min(options, key=lambda p: medians[p])
        if default in medians and medians[default] <= (1.0 + min_gain) * medians[best]:
            best = default
        layer.kernel_table[count] = best
        results.append(
            TunedLayer(
                layer=layer.layer_name,
                rows=count,
                chosen=KERNEL_LABELS[best],
                ms={KERNEL_LABELS[p]: medians[p] for p in options},
                default=KERNEL_LABELS[default],
            )
        )
    return results


def untune(model: nn.Module) -> None:
    """Forget every tuned choice: each conv goes back to :func:`~streamify.layers.conv_kernels.default_kernel`
    and PyTorch's products."""
    make_portable(model)
    for layer in kernel_layers(model):
        layer.kernel_table = {}
