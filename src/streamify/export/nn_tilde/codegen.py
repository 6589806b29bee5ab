"""The class of an nn~ file's module: its methods carry the exported names (``encode``, ``decode``...).

nn~ calls a file's methods by name, and each method's stream is its own attribute ``stream_i``,
typed by an interface (calls to it are not inlined, see ``dispatch.py``; ``stream_i`` is also
the name of its weights in the file). TorchScript reads names from source: a method is
compiled under the name it has in the source, an attribute is reached by a literal name
(``getattr`` takes a string literal only), and a closed-over Python ``int`` is refused. So the
few lines that depend on the names are generated as source (:func:`_source`), registered with
:mod:`linecache` so that TorchScript can read them:

* per exported method ``M`` (index ``i``): ``def M(self, x): return self.call_method(i, x)``;
* ``call_stream(index, x)`` and ``reset_stream(index, items)``: chains of ``if index == i`` reaching
  ``self.stream_i`` (after inlining, a method's constant index leaves one branch).

Everything else (pending resets, warm-up, nn~'s attributes) is plain code in :mod:`.module`.
"""

from __future__ import annotations

import itertools
import linecache
from typing import Dict, List, Optional, Sequence

import torch
from torch import Tensor

from streamify.export.dispatch import StreamInterface
from streamify.export.methods import ConvertedMethod
from streamify.export.nn_tilde.module import NnTildeModule

_counter = itertools.count()


def _source(methods: Sequence[ConvertedMethod]) -> str:
    """The source of class ``StreamifyNnTilde(Base)``: one method per exported name and the streams' dispatch."""
    lines = ["class StreamifyNnTilde(Base):", '    """An nn~ model exported by streamify."""', ""]
    for index, m in enumerate(methods):
        lines += [
            "    @torch.jit.export",
            f"    def {m.name}(self, x: Tensor) -> Tensor:",
            f'        """One nn~ buffer: [batch, {m.in_channels}, n / {m.in_ratio}] -> '
            f'[batch, {m.out_channels}, n / {m.out_ratio}], any n."""',
            f"        return self.call_method({index}, x)",
            "",
        ]
    lines.append("    def call_stream(self, index: int, x: Tensor) -> Tensor:")
    for index in range(len(methods)):
        lines += [f"        if index == {index}:", f"            return self.stream_{index}(x)"]
    lines += ['        raise IndexError("streamify: no stream of this index")', ""]
    lines.append("    def reset_stream(self, index: int, items: Optional[List[int]]) -> None:")
    for index in range(len(methods)):
        lines += [f"        if index == {index}:", f"            self.stream_{index}.reset(items)"]
    return "\n".join(lines) + "\n"


def wrapper_class(methods: Sequence[ConvertedMethod], base: Optional[type] = None) -> type:
    """The module class of a file exporting ``methods``: a subclass of ``base`` (:class:`NnTildeModule` or a
    subclass of it) with one exported method per name and the streams' dispatch."""
    annotations: Dict[str, object] = {
        "_methods": List[str],
        "_attributes": List[str],
        "sample_rate": int,
        "sr": int,
        "streamify_info": Dict[str, str],
        "pending_reset": List[bool],
        "pending_items": List[List[int]],
        "warmed": bool,
        "warm_lengths": List[List[int]],
        "warm_channels": List[int],
    }
    # each stream is typed by an interface: calls to it are not inlined into the methods' graphs, so that
    # warm_up() and the host's calls run (and compile) the same function
    annotations.update({f"stream_{index}": StreamInterface for index in range(len(methods))})
    source = _source(methods)
    filename = f"<streamify-nn-tilde-{next(_counter)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {
        "__name__": "streamify_nn_tilde_generated",
        "torch": torch,
        "Tensor": Tensor,
        "List": List,
        "Optional": Optional,
        "Base": base or NnTildeModule,
    }
    exec(compile(source, filename, "exec", dont_inherit=True), namespace)  # noqa: S102 - our own source, above
    cls = namespace["StreamifyNnTilde"]
    # set as objects, not strings: TorchScript reads attribute types from the class's own annotations
    cls.__annotations__ = annotations
    return cls
