"""PyTorch models named by a spec: a built-in one, a checkpoint, or ``package.module:factory`` with optional weights.

Part of :mod:`streamify.loading` (the one place a model spec is resolved); :func:`streamify.loading.resolve`
dispatches here for the PyTorch kinds.

Everything a user can get wrong here (a module that does not import, a weights file that is
missing, unreadable, refused or of another model, an example of the wrong channel count) raises
:class:`StreamingError` saying what and what to do, so that the command line reports it in one line.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import types
from pathlib import Path
from typing import List, Mapping, Optional, Sequence, Union

from torch import Tensor, nn

from streamify.cli_errors import one_line, where
from streamify.layers.base import StreamingError
from streamify.models.torch_files import load_tensors, unreadable

BUILTIN = ("demo", "pretrained")
#: file suffixes read as RAVE checkpoints (``streamify train``) or weight files
CHECKPOINT_SUFFIXES = (".ckpt", ".pt", ".pth")

#: how to write a weights file this loader takes
SAVE_HINT = "save them with torch.save(model.state_dict(), path)"


def load_model(spec: str, weights: Optional[Union[str, Path]] = None) -> nn.Module:
    """The model a command line names, in eval mode.

    Args:
        spec: ``"demo"`` (the built-in demo autoencoder), ``"pretrained"`` (the shipped trained
            RAVE-style model), a checkpoint of ``streamify train`` (``.ckpt``) or a RAVE weight file
            (``.pt``), or ``"package.module:factory"``, where ``factory()`` returns an ``nn.Module``
            (a class works too). The module is looked up in the current directory first, as
            ``python -m`` does (the current directory is put on ``sys.path``).
        weights: a state dict saved with ``torch.save`` (or a checkpoint holding one under
            ``"state_dict"``); loaded with ``weights_only=True`` (no arbitrary unpickling), strictly.

    Raises:
        StreamingError: the module does not import, the factory fails or returns no module, or
            the weights are missing, unreadable, refused or do not fit the model.
    """
    if spec == "demo":
        from streamify.models.demo import build_demo_autoencoder

        model: nn.Module = build_demo_autoencoder()
    elif spec == "pretrained":
        from streamify.models.shipped import pretrained

        model = pretrained()
        model.use_noise = False
    elif spec.endswith(CHECKPOINT_SUFFIXES) and ":" not in spec:
        from streamify.models.checkpoint import load_checkpoint

        model = load_checkpoint(spec)
        # streamed and exported without the noise synthesizer: its random draws cannot be checked against offline
        model.use_noise = False
    else:
        model = _build(spec)
    if weights is not None:
        load_weights(model, weights, spec)
    return model.eval()


def _build(spec: str) -> nn.Module:
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise StreamingError(
            f"streamify: model {spec!r} is neither a built-in model {BUILTIN} nor 'package.module:factory' "
            "(e.g. mymodel:build for the function build of mymodel.py in the current directory)"
        )
    module = _import(module_name, spec)
    if not hasattr(module, attribute):
        found = factories(module)
        listed = ", ".join(found[:10]) + (f", ... ({len(found)} in all)" if len(found) > 10 else "")
        raise StreamingError(
            f"streamify: {module_name} ({getattr(module, '__file__', '?')}) has no {attribute!r}; name a function "
            f"or nn.Module class defined there ({listed or 'it defines none'})"
        )
    try:
        model = getattr(module, attribute)()
    except Exception as error:
        raise StreamingError(
            f"streamify: {spec}() raised {type(error).__name__}: {one_line(str(error), 300)} "
            f"({where(error, getattr(module, '__file__', None))}); fix the factory (it is called without arguments)"
        ) from error
    if not isinstance(model, nn.Module):
        raise StreamingError(f"streamify: {spec}() returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def factories(module: types.ModuleType) -> List[str]:
    """Names of the public functions, then of the ``nn.Module`` classes, defined in ``module`` itself (not imported),
    each sorted."""
    functions, classes = [], []
    for name, value in vars(module).items():
        if name.startswith("_") or getattr(value, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(value):
            functions.append(name)
        elif inspect.isclass(value) and issubclass(value, nn.Module):
            classes.append(name)
    return sorted(functions) + sorted(classes)


def _import(module_name: str, spec: str):
    """Import ``module_name`` with the current directory on ``sys.path`` (as ``python -m`` puts it)."""
    here = os.getcwd()
    if "" not in sys.path and here not in sys.path:
        sys.path.insert(0, here)
        importlib.invalidate_caches()
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            top = missing.split(".")[0]
            raise StreamingError(
                f"streamify: cannot import {module_name!r} (model {spec!r}): no module {missing!r} in the current "
                f"directory ({here}) or on the Python path; run streamify in the folder that holds {top}.py "
                "(or the package folder), or add that folder to PYTHONPATH"
            ) from error
        raise StreamingError(
            f"streamify: importing {module_name!r} failed: it imports {missing!r}, which is not installed "
            f"({where(error)}); install it"
        ) from error
    except Exception as error:  # the module's own code failed
        raise StreamingError(
            f"streamify: importing {module_name!r} failed: {type(error).__name__}: {one_line(str(error), 300)} "
            f"({where(error)})"
        ) from error


def load_weights(model: nn.Module, weights: Union[str, Path], spec: str = "the model") -> None:
    """Load the state dict in the file ``weights`` into ``model`` (strictly, ``weights_only``).

    Raises:
        StreamingError: no such file, not a readable ``torch.save`` file (truncated, another format),
            refused (it holds Python objects besides tensors), or weights of another model (keys or
            shapes differ; every difference is counted, the first ones named).
    """
    path = Path(weights)
    if not path.exists():
        raise StreamingError(
            f"streamify: --weights {path}: no such file; give the path of the model's weights ({SAVE_HINT})"
        )
    if not path.is_file():
        raise StreamingError(
            f"streamify: --weights {path} is a folder, not a file; give the weights file ({SAVE_HINT})"
        )
    state = _read_weights(path)
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]  # a training checkpoint (PyTorch Lightning and others)
    if not isinstance(state, Mapping):
        raise StreamingError(
            f"streamify: --weights {path} holds a {type(state).__name__}, not a state dict; {SAVE_HINT}"
        )
    _check_fit(model, state, path, spec)
    model.load_state_dict(state)


def _read_weights(path: Path) -> object:
    try:
        return load_tensors(path)
    except Exception as error:  # unpickling errors, truncated archives, other formats: see unreadable()
        raise StreamingError(f"streamify: --weights {path} {unreadable(path, error)}; {SAVE_HINT}") from None


def _check_fit(model: nn.Module, state: Mapping, path: Path, spec: str) -> None:
    """Refuse weights whose names or shapes are not the model's, listing how they differ."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unknown = [str(k) for k in state if k not in expected]
    shapes = []
    for key, value in expected.items():
        if key in state:
            got = state[key]
            if not isinstance(got, Tensor):
                shapes.append(f"{key}: file {type(got).__name__}, model {tuple(value.shape)}")
            elif got.shape != value.shape:
                shapes.append(f"{key}: file {tuple(got.shape)}, model {tuple(value.shape)}")
    if not (missing or unknown or shapes):
        return
    parts = []
    for label, names in (("missing", missing), ("unknown", unknown), ("of another shape", shapes)):
        if names:
            parts.append(f"{len(names)} {label} ({_first(names)})")
    raise StreamingError(
        f"streamify: --weights {path} do not fit {spec}: {', '.join(parts)}; they are the weights of another "
        f"model (or another configuration of it): give the weights of this model ({SAVE_HINT})"
    )


def _first(names: Sequence[str], count: int = 3) -> str:
    shown = ", ".join(names[:count])
    return shown + (", ..." if len(names) > count else "")


__all__: List[str] = ["BUILTIN", "CHECKPOINT_SUFFIXES", "factories", "load_model", "load_weights"]
