"""Where a node of a captured graph comes from: the op or layer, and the user's source line (for messages)."""

from __future__ import annotations

import inspect
from typing import Dict

import torch.fx as fx
from torch import nn

#: frames of these libraries are never the user's source line (einops: tensor helpers user code calls)
_LIBRARY_PATHS = ("/torch/", "/streamify/convert/", "/streamify/runtime/", "/einops/")


def _library_frame(filename: str) -> bool:
    return any(part in filename for part in _LIBRARY_PATHS)


def source_of(node: fx.Node) -> str:
    """``file:line: code`` of the user code that created ``node`` (best effort)."""
    trace = node.stack_trace or ""
    lines = [line.strip() for line in trace.strip().splitlines() if line.strip()]
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith("File ") and not _library_frame(lines[i]):
            code = lines[i + 1] if i + 1 < len(lines) and not lines[i + 1].startswith("File ") else ""
            return f"{lines[i]}: {code}"
    return f"graph node {node.name}"


def describe_node(modules: Dict[str, nn.Module], node: fx.Node) -> str:
    """The op of ``node``, or for a module call its path in the model and its class."""
    if node.op == "call_module":
        module = modules.get(str(node.target))
        path = str(node.target).removeprefix("model.") or "the model"
        kind = type(module).__name__ if module is not None else "module"
        where = getattr(type(module), "__module__", "")
        return f"layer {path!r} ({where}.{kind})" if where else f"layer {path!r} ({kind})"
    stack = node.meta.get("nn_module_stack") or {}
    if stack:  # the innermost layer whose forward made the op
        path, cls = list(stack.values())[-1]
        path = str(path).removeprefix("model").removeprefix(".")
        if path:
            return f"{describe_target(node)} in layer {path!r} ({cls.__module__}.{cls.__qualname__})"
    return describe_target(node)


def where_of(modules: Dict[str, nn.Module], node: fx.Node) -> str:
    """The op or layer of ``node`` and the user's source line that made it.

    A layer called by a container (``nn.Sequential``) has no call in the user's code: the container is
    named, and for a user's class, the line that defines it.
    """
    source = source_of(node)
    if source.startswith("graph node") and node.op == "call_module":
        module = modules.get(str(node.target))
        parent_path = str(node.target).rpartition(".")[0]
        parent = modules.get(parent_path)
        caller = parent_path.removeprefix("model").removeprefix(".") or "the model"
        called = f"called by {type(parent).__name__} {caller!r}" if parent is not None else "called by a container"
        if module is not None and not type(module).__module__.startswith("torch."):
            return f"{describe_node(modules, node)} ({called}) at {class_source(type(module))}"
        return f"{describe_node(modules, node)} ({called})"
    return f"{describe_node(modules, node)} at {source}"


def class_source(cls: type) -> str:
    """``File "...", line n: class Name(...)`` where ``cls`` is defined (best effort)."""
    try:
        lines, number = inspect.getsourcelines(cls)
        return f'File "{inspect.getsourcefile(cls)}", line {number}: {lines[0].strip()}'
    except (OSError, TypeError):
        return f"{cls.__module__}.{cls.__qualname__}"


def describe_target(node: fx.Node) -> str:
    target = node.target
    if isinstance(target, str):
        return target
    module = getattr(target, "__module__", None) or ""
    name = getattr(target, "__name__", None) or repr(target)
    if inspect.isbuiltin(target) or module.startswith("torch"):
        return f"{module}.{name}" if module else name
    return name


def user_frame(error: BaseException) -> str:
    """`` at file:line: code`` of the innermost user frame of an exception's traceback (best effort)."""
    import traceback

    frames = [f for f in traceback.extract_tb(error.__traceback__) if not _library_frame(f.filename)]
    if not frames:
        return ""
    frame = frames[-1]
    return f' at File "{frame.filename}", line {frame.lineno}: {(frame.line or "").strip()}'
