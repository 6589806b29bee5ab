"""acids-rave training runs: finding their config and checkpoint, and building the trained model from them.

A run of ``rave train`` is a folder that holds the operative gin config (``config.gin``) and, below it,
Lightning checkpoints (``version_N/checkpoints/*.ckpt``, the weights under ``state_dict``). A run is
named by its folder or by one checkpoint in it, found as ``rave export`` finds them: the config in the
checkpoint's folder or up to two folders above; for a folder, its newest checkpoint (by modification
time) anywhere below it. The model is built by acids-rave's own classes from the config through gin,
with cached_conv's caching off (plain padded convs, as in training), and its weights are loaded.
"""

from __future__ import annotations

import contextlib
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Mapping, Tuple, Union

import torch
from torch import nn

from streamify.cli_errors import one_line
from streamify.layers.base import StreamingError
from streamify.models.rave_import import import_rave

CONFIG_NAME = "config.gin"
#: the parts of a RAVE model that an export uses: their weights must all be in the checkpoint
USED_PREFIXES = ("encoder.", "decoder.", "pqmf.", "latent_pca", "latent_mean", "fidelity")


@dataclass
class RaveRun:
    """A trained acids-rave model and where it came from.

    Attributes:
        model: the ``rave.RAVE`` module in eval mode, weight norm folded into the weights.
        config: the run's ``config.gin``.
        checkpoint: the checkpoint its weights were read from.
    """

    model: nn.Module
    config: Path
    checkpoint: Path

    @property
    def name(self) -> str:
        """The run's name, as ``rave export`` names its file: the folder that holds ``config.gin``."""
        return self.config.parent.name

    @property
    def sample_rate(self) -> int:
        return int(self.model.sr)

    @property
    def channels(self) -> int:
        return int(self.model.n_channels)


def find_config(run: Union[str, Path]) -> Path:
    """The ``config.gin`` of a run folder or checkpoint: in its folder or up to two folders above."""
    path = Path(run)
    if not path.exists():
        raise StreamingError(f"streamify: {path}: no such file or folder; give a RAVE run folder or a .ckpt in one")
    folder = path if path.is_dir() else path.parent
    for candidate in (folder, folder.parent, folder.parent.parent):
        if (candidate / CONFIG_NAME).is_file():
            return candidate / CONFIG_NAME
    raise StreamingError(
        f"streamify: {path} is not in a RAVE run: no {CONFIG_NAME} in {folder} or the two folders above it; "
        "give the run folder that rave train wrote (it holds config.gin)"
    )


def find_checkpoint(run: Union[str, Path]) -> Path:
    """The checkpoint ``run`` names: itself if a file, else the newest ``*.ckpt`` below the folder."""
    path = Path(run)
    if path.is_file():
        return path
    found: List[Path] = sorted(path.rglob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise StreamingError(
            f"streamify: the RAVE run {path} holds no checkpoint (*.ckpt below it); train it first, or give the "
            "checkpoint's path"
        )
    return found[-1]


def find_run(run: Union[str, Path]) -> Tuple[Path, Path]:
    """``(config.gin, checkpoint)`` of a run folder or a checkpoint in one (see the module docstring)."""
    config = find_config(run)
    return config, find_checkpoint(run)


def is_rave_run(spec: str) -> bool:
    """Whether the command-line model ``spec`` names a RAVE run (a folder or .ckpt with a config.gin)."""
    path = Path(spec)
    if not path.exists() or (path.is_file() and path.suffix != ".ckpt"):
        return False
    try:
        find_config(path)
    except StreamingError:
        return False
    return True


@contextlib.contextmanager
def _plain_convs() -> Iterator[None]:
    """cached_conv's caching off while the model is built (its layers then pad like training), restored after."""
    import cached_conv

    before = cached_conv.USE_BUFFER_CONV
    cached_conv.use_cached_conv(False)
    try:
        yield
    finally:
        cached_conv.use_cached_conv(before)


def build_model(config: Path) -> nn.Module:
    """``rave.RAVE()`` built from ``config`` through gin (acids-rave's own classes), float32, random weights."""
    rave = import_rave()
    import gin

    gin.clear_config()
    try:
        gin.parse_config_file(str(config))
    except Exception as error:
        raise StreamingError(
            f"streamify: the RAVE config {config} cannot be read by acids-rave: {type(error).__name__}: "
            f"{one_line(str(error), 300)}; is it a config.gin written by rave train (acids-rave 2.x)?"
        ) from error
    try:
        with _plain_convs():
            model = rave.RAVE()
    except Exception as error:
        raise StreamingError(
            f"streamify: acids-rave cannot build the model of {config}: {type(error).__name__}: "
            f"{one_line(str(error), 300)}"
        ) from error
    return model.float().eval()


def _read_state(checkpoint: Path) -> Mapping[str, torch.Tensor]:
    try:
        data = torch.load(str(checkpoint), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(error))
        raise StreamingError(
            f"streamify: the checkpoint {checkpoint} was refused: it holds Python objects "
            f"({found.group(1) if found else 'besides tensors'}) and checkpoints are read with weights_only=True "
            "(unpickling could run any code); save the state dict alone: torch.save({'state_dict': "
            "model.state_dict()}, path)"
        ) from None
    except Exception as error:
        raise StreamingError(
            f"streamify: the checkpoint {checkpoint} cannot be read (truncated, or not written by torch.save): "
            f"{type(error).__name__}: {one_line(str(error), 200)}"
        ) from None
    state = data.get("state_dict") if isinstance(data, Mapping) else None
    if not isinstance(state, Mapping):
        raise StreamingError(
            f"streamify: the checkpoint {checkpoint} holds no 'state_dict'; give a Lightning checkpoint of rave train"
        )
    return state


def load_weights(model: nn.Module, checkpoint: Path) -> None:
    """The checkpoint's weights into ``model``: every weight an export uses must be there, with its shape."""
    state = _read_state(checkpoint)
    expected = {k: v for k, v in model.state_dict().items() if k.startswith(USED_PREFIXES)}
    missing = [k for k in expected if k not in state]
    shapes = [
        f"{k}: file {tuple(state[k].shape)}, model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or shapes:
        listed = ", ".join((missing + shapes)[:3])
        raise StreamingError(
            f"streamify: the checkpoint {checkpoint} does not fit the model of its config: {len(missing)} weights "
            f"missing, {len(shapes)} of another shape ({listed}); give a checkpoint of this run"
        )
    model.load_state_dict({k: state[k] for k in expected}, strict=False)


def _fold_weight_norm(model: nn.Module) -> None:
    """Fold the (old-style) weight norm of every conv into its weight, as ``rave export`` does."""
    for module in model.modules():
        if hasattr(module, "weight_g"):
            nn.utils.remove_weight_norm(module)


def load_run(run: Union[str, Path]) -> RaveRun:
    """The trained model of an acids-rave run folder or checkpoint (see the module docstring).

    Raises:
        StreamingError: no config or checkpoint found, acids-rave missing, a config it cannot build, or a
            checkpoint that cannot be read or does not fit, in one line with what to do.
    """
    config, checkpoint = find_run(run)
    model = build_model(config)
    load_weights(model, checkpoint)
    _fold_weight_norm(model)
    return RaveRun(model.eval(), config, checkpoint)


__all__ = ["RaveRun", "build_model", "find_checkpoint", "find_config", "find_run", "is_rave_run", "load_run"]
