"""Side effects in a captured fx graph: which nodes write in place, and removal of the code the output does not use."""

from __future__ import annotations

import operator
from typing import Dict, List, Optional, Set

import torch
import torch.fx as fx
from torch import Tensor

_INPLACE_OPERATORS = {
    operator.setitem,
    operator.iadd,
    operator.isub,
    operator.imul,
    operator.itruediv,
    operator.ifloordiv,
    operator.imod,
    operator.ipow,
    operator.iand,
    operator.ior,
    operator.ixor,
    operator.ilshift,
    operator.irshift,
    operator.imatmul,
}
_VIEW_METHODS = {
    "view",
    "view_as",
    "reshape",
    "reshape_as",
    "narrow",
    "select",
    "permute",
    "transpose",
    "t",
    "unsqueeze",
    "squeeze",
    "expand",
    "expand_as",
    "movedim",
    "swapaxes",
    "flatten",
    "unflatten",
    "as_strided",
    "detach",
    "contiguous",
    "split",
    "chunk",
    "unbind",
    "__getitem__",
}


def mutates(node: fx.Node) -> bool:
    """Whether the node writes in place into its first argument (setitem, ``add_``, ``+=``)."""
    if node.op == "call_function":
        return node.target in _INPLACE_OPERATORS
    if node.op == "call_method":
        name = str(node.target)
        return name.endswith("_") and not name.startswith("__")
    return False


def _alias_groups(nodes: List[fx.Node]) -> Dict[fx.Node, Set[fx.Node]]:
    """Nodes that may share memory: same storage on the example, or linked by view ops."""
    parent: Dict[fx.Node, fx.Node] = {n: n for n in nodes}

    def find(n: fx.Node) -> fx.Node:
        while parent[n] is not n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    def union(a: fx.Node, b: fx.Node) -> None:
        parent[find(a)] = find(b)

    by_storage: Dict[int, fx.Node] = {}
    for node in nodes:
        value = node.meta.get("concrete")
        if isinstance(value, Tensor) and value.layout == torch.strided:
            try:
                pointer = value.untyped_storage().data_ptr()
            except Exception:
                pointer = 0
            if pointer:
                if pointer in by_storage:
                    union(node, by_storage[pointer])
                else:
                    by_storage[pointer] = node
        first = node.args[0] if node.args and isinstance(node.args[0], fx.Node) else None
        if first is None:
            continue
        is_view = (node.op == "call_method" and node.target in _VIEW_METHODS) or (
            node.op == "call_function" and (node.target is operator.getitem or mutates(node))
        )
        if node.op == "call_function" and node.target is getattr and node.args[1] in ("T", "mT", "data"):
            is_view = True
        if is_view:
            union(node, first)
    groups: Dict[fx.Node, Set[fx.Node]] = {}
    for node in nodes:
        groups.setdefault(find(node), set()).add(node)
    return {node: groups[find(node)] for node in nodes}


def remove_dead_code(graph: fx.Graph) -> None:
    """Erase the nodes that do not contribute to the output.

    An in-place op (``x[:] = ...``, ``x.add_(...)``) is kept when a later node that is kept
    reads the tensor it modifies or a view of it; so a model's bookkeeping that is never
    read (state updates of a module's own streaming API, unused branches) goes away.
    """
    nodes = list(graph.nodes)
    position = {node: i for i, node in enumerate(nodes)}
    aliases: Optional[Dict[fx.Node, Set[fx.Node]]] = None
    live: Set[fx.Node] = set()
    for node in reversed(nodes):
        if node.op in ("output", "placeholder") or any(user in live for user in node.users):
            live.add(node)
        elif mutates(node) and node.args and isinstance(node.args[0], fx.Node):
            if aliases is None:
                aliases = _alias_groups(nodes)
            here = position[node]
            if any(user in live and position[user] > here for m in aliases[node.args[0]] for user in m.users):
                live.add(node)
        elif node.op == "call_module" and graph.owning_module is not None:
            module = graph.owning_module.get_submodule(str(node.target))
            if getattr(module, "_is_impure", False):
                live.add(node)
    for node in reversed(nodes):
        if node not in live:
            graph.erase_node(node)
