"""Models named on the command line: a built-in one, or ``package.module:factory`` with optional weights."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Optional, Union

import torch
from torch import nn

from streamify.layers.base import StreamingError, StreamingModule

BUILTIN = ("demo", "pretrained")
#: file suffixes read as RAVE checkpoints (``streamify train``) or weight files
CHECKPOINT_SUFFIXES = (".ckpt", ".pt", ".pth")


def load_model(spec: str, weights: Optional[Union[str, Path]] = None) -> nn.Module:
    """The model a command line names.

    Args:
        spec: ``"demo"`` (the built-in demo autoencoder), ``"pretrained"`` (the shipped trained
            RAVE-style model), a checkpoint of ``streamify train`` (``.ckpt``) or a RAVE weight file
            (``.pt``), or ``"package.module:factory"``, where ``factory()`` returns an ``nn.Module``
            (a class works too).
        weights: a state dict saved with ``torch.save``; loaded with ``weights_only=True``
            (no arbitrary unpickling), strictly.
    """
    if spec == "demo":
        from streamify.models.demo import build_demo_autoencoder

        model: nn.Module = build_demo_autoencoder()
    elif spec == "pretrained":
        from streamify.models.shipped import pretrained

        model = pretrained()
    elif spec.endswith(CHECKPOINT_SUFFIXES) and ":" not in spec:
        from streamify.models.checkpoint import load_checkpoint

        model = load_checkpoint(spec)
    else:
        module_name, _, attribute = spec.partition(":")
        if not module_name or not attribute:
            raise StreamingError(
                f"streamify: model {spec!r} is neither a built-in model {BUILTIN} nor 'package.module:factory'"
            )
        try:
            factory = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as error:
            raise StreamingError(f"streamify: cannot import {spec!r}: {error}") from error
        model = factory()
        if not isinstance(model, nn.Module):
            raise StreamingError(f"streamify: {spec} returned a {type(model).__name__}, not a torch.nn.Module")
    if weights is not None:
        state = torch.load(str(weights), map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        model.load_state_dict(state)
    return model.eval()


def streaming_model(
    model: nn.Module, channels: int, length: int = 32768, method: str = "forward", dtype: torch.dtype = torch.float32
) -> StreamingModule:
    """``model`` itself if it already streams, else its conversion on a random example ``[1, channels, length]``."""
    if isinstance(model, StreamingModule):
        return model.to(dtype)
    from streamify.convert import convert

    generator = torch.Generator().manual_seed(0)
    example = torch.randn(1, channels, length, generator=generator, dtype=dtype)
    return convert(model.to(dtype), example, method=method)
