"""Containers that compose streaming modules and keep their timing consistent by themselves.

:class:`Sequential` chains modules: each is configured with the delay of the stream
that reaches it, rates multiply, and the buffer multiple is the smallest input length
that gives every layer whole, accepted buffers. :class:`Branches` feeds one input to
parallel branches and merges them (sum, mean, product, concatenation over channels):
each branch ends in a delay line that aligns it on the most delayed branch.
:class:`Residual` is ``module(x) + shortcut(x)``; :class:`Heads` returns the aligned
branches as a list. No delay is ever passed by hand.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import List, Optional

import torch
from torch import Tensor, nn

from streamify.layers.base import StreamingError, StreamingModule, busy_message
from streamify.layers.pointwise import Pointwise
from streamify.layers.shift import Delay
from streamify.layers.timeline import Fold, RatesDiffer, Timing, align, align_in_time, guarded
from streamify.timing import lcm_all

MERGES = ("sum", "mean", "prod", "cat")


def as_streaming(module: nn.Module) -> StreamingModule:
    """The streaming counterpart of a module placed in a container.

    Streaming modules are kept; ``torch.nn`` time layers (Conv1d, ConvTranspose1d,
    pools, Upsample, pads, LSTM, GRU) get their streaming copy; ``nn.Sequential``
    becomes :class:`Sequential`; any other module must act on each frame on its own
    and is wrapped in :class:`Pointwise`. A module hiding time layers inside is
    refused: convert it with :func:`streamify.convert` instead.

    >>> import torch
    >>> from streamify.layers import as_streaming
    >>> conv = as_streaming(torch.nn.Conv1d(1, 2, 3, padding=1))
    >>> type(conv).__name__, conv.delay
    ('Conv1d', 1)
    >>> type(as_streaming(torch.nn.ReLU())).__name__
    'Pointwise'
    """
    from streamify.layers.torch_layers import from_torch_layer, resembles_time_layer

    if isinstance(module, StreamingModule):
        return module
    if isinstance(module, nn.Sequential):
        return Sequential(*module)
    converted = from_torch_layer(module)
    if converted is not None:
        return converted
    if resembles_time_layer(module) and not _is_pointwise_torch(module):
        raise StreamingError(
            f"streamify: {type(module).__module__}.{type(module).__name__} is a subclass of a torch time layer with "
            "its own forward (e.g. a pad inside it), which a container cannot stream as the torch layer; "
            "convert the model with streamify.convert(model, example), which traces into it, or register it "
            "with streamify.register"
        )
    for name, child in module.named_modules():
        if resembles_time_layer(child) and not _is_pointwise_torch(child):
            raise StreamingError(
                f"streamify: {type(module).__name__} holds the time layer {name!r} ({type(child).__name__}) "
                "inside its own forward, which a container cannot see; rebuild it from streamify layers, "
                "or convert the whole model with streamify.convert(model, example)"
            )
    return Pointwise(module)


def _is_pointwise_torch(module: nn.Module) -> bool:
    if isinstance(module, nn.Conv1d):
        return module.kernel_size[0] == 1 and module.stride[0] == 1 and module.padding in ((0,), "valid", "same")
    return False


def _dtype_of(modules: List[nn.Module]) -> torch.dtype:
    for module in modules:
        for parameter in module.parameters():
            return parameter.dtype
    return torch.get_default_dtype()


class Sequential(StreamingModule):
    """Streaming modules applied one after another (``torch.nn`` layers are converted, see :func:`as_streaming`).

    Each layer is fed the delay of the one before; ``delay``, ``ratio`` and ``buffer_multiple`` are
    those of the whole chain.

    Shape:
        input ``[batch, in_channels, n]``, ``n`` a multiple of ``buffer_multiple``; output
        ``[batch, out_channels, n / ratio]``, ``delay`` frames behind the offline output.

    >>> import torch
    >>> from streamify.layers import Conv1d, Sequential
    >>> model = Sequential(Conv1d(1, 8, 3, padding=1), torch.nn.Tanh(), Conv1d(8, 2, 4, stride=2, padding=1))
    >>> model.delay, model.ratio, model.buffer_multiple
    (1, Fraction(2, 1), 2)
    >>> x = torch.randn(1, 1, 16)
    >>> y = torch.cat([model(x[..., :8]), model(x[..., 8:])], -1)
    >>> y.shape
    torch.Size([1, 2, 8])
    >>> torch.allclose(y[..., 1:], model.offline(x)[..., :7], atol=1e-6)
    True
    """

    def __init__(self, *layers: nn.Module) -> None:
        super().__init__()
        if not layers:
            raise StreamingError("streamify: Sequential needs at least one layer")
        self.layers = nn.ModuleList(guarded([as_streaming(layer) for layer in layers]))
        for layer in self.layers:
            layer.is_root = False
        self.dtype_marker = torch.zeros(0, dtype=_dtype_of(list(self.layers)))
        self.set_name("Sequential")
        self._configure()

    def set_name(self, name: str) -> None:
        self.layer_name = name
        for i, layer in enumerate(self.layers):
            layer.set_name(f"{name}.{i}:{type(layer).__name__}")

    def _configure(self) -> None:
        fold = Fold()
        timing = Timing(self.input_delay)
        for layer in self.layers:
            timing = fold.place(layer, timing)
        self._follow_channels()
        self._adopt_input(self.layers[0])
        self.delay = timing.delay
        self._set_ratio(timing.ratio)
        self.buffer_multiple = fold.buffer_multiple
        self.receptive_field = -1 if timing.field is None else math.ceil(timing.field)

    def _follow_channels(self) -> None:
        """Check that each layer gets the channel count it expects; set the chain's in and out counts."""
        channels = -1
        self.in_channels = -1
        preserving = True  # every layer so far keeps the channel count of its input
        for layer in self.layers:
            if layer.in_channels >= 0 and channels >= 0 and layer.in_channels != channels:
                raise StreamingError(
                    f"streamify: {layer.layer_name} expects {layer.in_channels} channels but the layer before "
                    f"gives {channels}"
                )
            if preserving and layer.in_channels >= 0:
                self.in_channels = layer.in_channels
            if layer.out_channels >= 0:
                channels = layer.out_channels
                preserving = False
            elif layer.changes_layout or (isinstance(layer, Branches) and layer.merge == "cat"):
                # axes rearranged, or concatenated paths of unknown channel counts: the count is unknown from here on
                channels = -1
                preserving = False
            elif layer.in_channels >= 0:
                channels = layer.in_channels
        self.out_channels = channels

    def _reset_children(self, indices: Optional[List[int]]) -> None:
        for layer in self.layers:
            layer.reset(indices)

    def stream(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def offline(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer.offline(x)
        return x

    def __getitem__(self, index: int) -> StreamingModule:
        return self.layers[index]

    def __len__(self) -> int:
        return len(self.layers)


class Branches(StreamingModule):
    """Parallel branches fed the same input, aligned by delay lines and merged.

    ``merge``: ``'sum'``, ``'mean'``, ``'prod'`` (same shapes) or ``'cat'`` (over channels).
    Every branch must end at the same rate.

    Shape:
        input ``[batch, in_channels, n]``, ``n`` a multiple of ``buffer_multiple``; output
        ``[batch, out_channels, n / ratio]`` (``'cat'``: the branches' channels added up),
        ``delay`` (the largest branch delay) frames behind the offline output.

    >>> import torch
    >>> from streamify.layers import Branches, Conv1d, Pointwise
    >>> both = Branches(Conv1d(2, 3, 3, padding=1), Pointwise(torch.nn.Identity()), merge="cat")
    >>> x = torch.randn(1, 2, 12)
    >>> y = torch.cat([both(x[..., :6]), both(x[..., 6:])], -1)
    >>> y.shape, both.delay
    (torch.Size([1, 5, 12]), 1)
    >>> torch.allclose(y[..., 1:], both.offline(x)[..., :11], atol=1e-6)
    True
    """

    def __init__(self, *branches: nn.Module, merge: str = "sum") -> None:
        super().__init__()
        if len(branches) < 1:
            raise StreamingError("streamify: Branches needs at least one branch")
        if merge not in MERGES:
            raise StreamingError(f"streamify: Branches: merge {merge!r} is not one of {MERGES}")
        self.merge = merge
        self.paths = nn.ModuleList([Sequential(branch, Delay(0)) for branch in branches])
        for path in self.paths:
            path.is_root = False
        self.dtype_marker = torch.zeros(0, dtype=_dtype_of(list(branches)))
        self.set_name(type(self).__name__)
        self._configure()

    def set_name(self, name: str) -> None:
        self.layer_name = name
        for i, path in enumerate(self.paths):
            path.set_name(f"{name}.branch{i}")

    def _branch_timings(self) -> List[Timing]:
        """Configure the branches and return their output timings before alignment."""
        timings = []
        for path in self.paths:
            branch = path.layers[0]
            branch.configure(self.input_delay)
            field = None if branch.receptive_field < 0 else Fraction(branch.receptive_field)
            timings.append(Timing(branch.delay, branch.ratio, field))
        return timings

    def _configure(self) -> None:
        try:  # the merge is frame by frame: the branches may run ahead together (a Sequential guards after)
            alignment = align(self._branch_timings(), takes_early_stream=True)
        except RatesDiffer as error:
            raise StreamingError(
                f"streamify: {self.layer_name}: branches end at different rates "
                f"{', '.join(str(r) for r in error.ratios)} "
                "(input samples per frame) and cannot be merged frame by frame"
            ) from None
        for path, frames in zip(self.paths, alignment.lines):
            path.layers[1].frames = frames
            path.configure(self.input_delay)
        self._adopt_timing()
        ins = {p.in_channels for p in self.paths if p.in_channels >= 0}
        self.in_channels = ins.pop() if len(ins) == 1 else -1
        self._adopt_input(self.paths[0])
        outs = [p.out_channels for p in self.paths]
        if self.merge == "cat":
            # a path of unknown output channels (pools, pointwise ops) passes its input's count on
            if min(outs) < 0 and self.in_channels >= 0:
                outs = [c if c >= 0 else self.in_channels for c in outs]
            self.out_channels = sum(outs) if min(outs) >= 0 else -1
        else:
            known = {c for c in outs if c >= 0}
            self.out_channels = known.pop() if len(known) == 1 else -1

    def _adopt_timing(self) -> None:
        first = self.paths[0]
        self.delay = first.delay
        self._set_ratio(first.ratio)
        self.buffer_multiple = lcm_all(p.buffer_multiple for p in self.paths)
        fields = [p.receptive_field for p in self.paths]
        self.receptive_field = -1 if min(fields) < 0 else max(fields)

    def _reset_children(self, indices: Optional[List[int]]) -> None:
        for path in self.paths:
            path.reset(indices)

    def _merge(self, outputs: List[Tensor]) -> Tensor:
        if self.merge == "cat":
            return torch.cat(outputs, 1)
        y = outputs[0]
        for other in outputs[1:]:
            if self.merge == "prod":
                y = y * other
            else:
                y = y + other
        if self.merge == "mean":
            y = y / len(outputs)
        return y

    def stream(self, x: Tensor) -> Tensor:
        outputs: List[Tensor] = []
        for path in self.paths:
            outputs.append(path(x))
        return self._merge(outputs)

    def offline(self, x: Tensor) -> Tensor:
        outputs: List[Tensor] = []
        for path in self.paths:
            outputs.append(path.offline(x))
        return self._merge(outputs)

    def extra_repr(self) -> str:
        return f"merge={self.merge!r}, delay={self.delay}"


class Residual(Branches):
    """``module(x) + shortcut(x)`` (identity shortcut by default), aligned.

    Shape:
        input ``[batch, channels, n]``, ``n`` a multiple of ``buffer_multiple``; output
        ``[batch, channels, n / ratio]``, ``delay`` frames behind the offline output.

    >>> import torch
    >>> from streamify.layers import Conv1d, Residual
    >>> block = Residual(Conv1d(2, 2, 3, padding=1))
    >>> x = torch.randn(1, 2, 12)
    >>> y = torch.cat([block(x[..., :6]), block(x[..., 6:])], -1)
    >>> y.shape, block.delay
    (torch.Size([1, 2, 12]), 1)
    >>> torch.allclose(y[..., 1:], block.offline(x)[..., :11], atol=1e-6)
    True
    """

    def __init__(self, module: nn.Module, shortcut: Optional[nn.Module] = None) -> None:
        super().__init__(module, nn.Identity() if shortcut is None else shortcut, merge="sum")


class Heads(Branches):
    """Parallel branches returned together as a list ``[head0, head1, ...]``, each ``[batch, channels, frames]``.

    Heads may end at different rates: each is delayed so that all lag the offline
    outputs by the same time in input samples where the rates allow it (else by the
    next whole frame); ``delays`` gives each head's delay in its own frames.
    Like a single-output model, a fresh stream's head ``i`` starts with ``delays[i]``
    zero frames, then the offline head: each head path is a root of its own.

    Shape:
        input ``[batch, in_channels, n]``, ``n`` a multiple of ``buffer_multiple``; output a list,
        head ``i`` ``[batch, out_channels_i, n / ratio_i]``, ``delays[i]`` frames behind offline.

    >>> import torch
    >>> from streamify.layers import Conv1d, Heads
    >>> heads = Heads(Conv1d(2, 3, 3, padding=1), Conv1d(2, 1, 4, stride=2, padding=1))
    >>> [y.shape for y in heads(torch.randn(1, 2, 8))]
    [torch.Size([1, 3, 8]), torch.Size([1, 1, 4])]
    >>> heads.delays  # both 2 input samples late
    [2, 1]
    """

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__(*branches, merge="sum")
        for path in self.paths:
            path.is_root = True  # each head validates its input and zeroes its own warm-up frames

    def _configure(self) -> None:
        lines = align_in_time(self._branch_timings())
        self.delays: List[int] = []
        for path, frames in zip(self.paths, lines):
            path.layers[1].frames = frames
            path.configure(self.input_delay)
            self.delays.append(path.delay)
        self._adopt_timing()
        self.buffer_multiple = lcm_all(p.buffer_multiple for p in self.paths)
        # the heads share one input: its channel count is checked like a Branches' (outputs are a list)
        ins = {p.in_channels for p in self.paths if p.in_channels >= 0}
        self.in_channels = ins.pop() if len(ins) == 1 else -1
        self._adopt_input(self.paths[0])

    def forward(self, x: Tensor) -> List[Tensor]:  # type: ignore[override]
        """One buffer ``[batch, channels, n]`` in, one tensor per head out."""
        if not self.streaming:
            return self.offline(x)
        if not self.is_root:
            return self.advance(x)
        self._validate(x)
        if self.busy:  # the thread guard (see StreamingModule)
            raise StreamingError(busy_message(self.layer_name))
        self._set_busy(True)
        outputs = self.advance(x)
        self._set_busy(False)
        return outputs

    def advance(self, x: Tensor) -> List[Tensor]:  # type: ignore[override]
        self._begin(x)
        outputs: List[Tensor] = []
        for path in self.paths:
            outputs.append(path(x))
        return outputs

    def offline(self, x: Tensor) -> List[Tensor]:  # type: ignore[override]
        """The offline heads over a whole signal (heads may run at different rates: no merge)."""
        outputs: List[Tensor] = []
        for path in self.paths:
            outputs.append(path.offline(x))
        return outputs
