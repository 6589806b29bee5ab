"""Trained RAVE-style models on disk: Lightning checkpoints of ``streamify train`` and shipped weight files.

A weight file is a dict ``{"format": "streamify-rave", "preset", "causal", "state_dict"}`` of plain
tensors (weight norms folded, float32), loadable with ``torch.load(..., weights_only=True)``.
A Lightning checkpoint holds the training module's state dict (``model.*`` keys, weight-normed)
and ``{"streamify": {"preset", "causal"}}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Union

import torch
from torch import Tensor

from streamify.layers.base import StreamingError
from streamify.models.rave import RAVE, fold_weight_norm, rave
from streamify.models.torch_files import load_tensors, unreadable

FORMAT = "streamify-rave"


def _model_state(state: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """The ``model.*`` entries of a training module's state dict, without the prefix."""
    return {key[len("model.") :]: value for key, value in state.items() if key.startswith("model.")}


def load_checkpoint(path: Union[str, Path]) -> RAVE:
    """The model a checkpoint (``.ckpt`` of ``streamify train``) or a weight file holds: float32, eval mode,
    weight norms folded.

    Raises:
        StreamingError: the file is missing, not a streamify RAVE checkpoint, or does not match its preset.
    """
    path = Path(path)
    if not path.is_file():
        raise StreamingError(f"streamify: checkpoint {path} does not exist")
    try:
        data = load_tensors(path)
    except Exception as error:  # unpickling errors have many types: see unreadable()
        raise StreamingError(
            f"streamify: cannot read checkpoint {path}: it {unreadable(path, error)}; give a checkpoint of "
            "'streamify train' (RUN/checkpoints/*.ckpt) or weights saved with streamify.models.save_weights"
        ) from None
    if not isinstance(data, dict):
        raise StreamingError(f"streamify: {path} is not a streamify RAVE checkpoint (a {type(data).__name__})")
    if data.get("format") == FORMAT:
        model = rave(data["preset"], causal=bool(data["causal"]))
        state = data["state_dict"]
        weight_norm = False
    elif "streamify" in data and "state_dict" in data:
        info = data["streamify"]
        model = rave(info["preset"], causal=bool(info["causal"]), weight_norm=True)
        state = _model_state(data["state_dict"])
        weight_norm = True
    else:
        raise StreamingError(
            f"streamify: {path} is neither a checkpoint of 'streamify train' nor a streamify RAVE weight file"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise StreamingError(f"streamify: {path} does not fit its preset: {error}") from error
    if weight_norm:
        fold_weight_norm(model)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model.float().eval()


def save_weights(model: RAVE, path: Union[str, Path]) -> Path:
    """Write ``model`` as a weight file (float32, weight norms folded, ``weights_only`` loadable)."""
    folded = rave(model.config, causal=model.causal)
    state = {key: value.detach().float().clone() for key, value in model.state_dict().items()}
    if any("parametrizations" in key for key in state):
        copy = rave(model.config, causal=model.causal, weight_norm=True)
        copy.load_state_dict(model.state_dict())
        state = {key: value.detach().float().clone() for key, value in fold_weight_norm(copy).state_dict().items()}
    folded.load_state_dict(state)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"format": FORMAT, "preset": model.config.name, "causal": model.causal, "state_dict": folded.state_dict()},
        str(path),
    )
    return path
