"""Compile each streaming layer type once in a TorchScript file, instead of the whole model per method.

TorchScript's graph executor inlines every module call into the caller's graph before it
optimises it, at the first calls of a loaded file. A streaming model of a few hundred layers
inlines into one graph of tens of thousands of nodes per exported method (29,500 for RAVE v2:
each layer brings its validation, warm-up masks, offline branch and error messages), and
optimising that graph took 4 to 9 s of CPU and 300 MB per method at load, on the thread that
computes audio in nn~. Calls through a TorchScript interface cannot be inlined: routed through
one, every call of a layer runs its class's own compiled method, which is optimised once for
all the layers of that type (RAVE v2: 81 layers, 6 types). The math and the call order are
unchanged; what changes is what the executor compiles (see ``docs/export.md``, "Loading").
"""

from __future__ import annotations

from typing import List, Optional

import torch
from torch import Tensor, nn

from streamify.layers.base import StreamingModule


@torch.jit.interface
class StreamInterface(nn.Module):
    """What a caller uses of a stream: one buffer in, one out (checked, or already checked by the caller), a reset.

    The exported methods call each method's buffering stream through it, and that stream calls its model's
    :meth:`~streamify.layers.base.StreamingModule.advance` through it.
    """

    def forward(self, x: Tensor) -> Tensor:
        pass

    def advance(self, x: Tensor) -> Tensor:
        pass

    def reset(self, indices: Optional[List[int]] = None) -> None:
        pass


@torch.jit.interface
class LayerInterface(nn.Module):
    """What a model's graph uses of a streaming layer: one buffer in, one out, and a reset (:class:`LayerCall`)."""

    def forward(self, x: Tensor) -> Tensor:
        pass

    def reset(self, indices: Optional[List[int]] = None) -> None:
        pass


class LayerCall(nn.Module):
    """Holds a scripted streaming layer behind :class:`LayerInterface`, so that calling it is not inlined.

    Shape:
        as the layer it holds: ``[batch, in_channels, n]`` to ``[batch, out_channels, n / ratio]``.
    """

    def __init__(self, layer: torch.jit.ScriptModule) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: Tensor) -> Tensor:
        return self.layer.forward(x)

    @torch.jit.export
    def reset(self, indices: Optional[List[int]] = None) -> None:
        self.layer.reset(indices)


# set as an object, not a string (this module postpones annotations): TorchScript reads the type from it
LayerCall.__annotations__ = {"layer": LayerInterface}


def _is_leaf(module: nn.Module) -> bool:
    return isinstance(module, StreamingModule) and not any(
        isinstance(child, StreamingModule) for child in module.modules() if child is not module
    )


def call_layers_through_interface(module: nn.Module) -> int:
    """Replace, in place, every streaming layer below ``module`` by a :class:`LayerCall` holding its scripted copy.

    Only for a module about to be scripted and saved: afterwards its layers are TorchScript
    modules (Python-side tools such as :func:`streamify.reset` no longer see them as streamify
    layers). Layers that hold other streaming layers (containers) stay, their leaves are replaced.

    Returns:
        The number of layers replaced.
    """
    replaced = 0
    for name, child in list(module.named_children()):
        if _is_leaf(child):
            setattr(module, name, LayerCall(torch.jit.script(child)))
            replaced += 1
        else:
            replaced += call_layers_through_interface(child)
    return replaced
