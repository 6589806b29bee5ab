"""One copy of each weight in a file that exports several methods of one model.

``encode``, ``decode`` and ``forward`` of an autoencoder are converted separately, each from
its own private copy of the model: without sharing, a file of the three holds the encoder's
and the decoder's weights twice (RAVE v2: 253 MB for 126 MB of weights) and a host holds them
twice in memory. Tensors equal in dtype, shape and every value are made one tensor here;
TorchScript saves a tensor shared by several modules once.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Tuple

import torch
from torch import Tensor, nn

#: tensors smaller than this are left alone: sharing them saves nothing, and a scalar that a caller sets in place
#: after the export's checks (e.g. a noise gain) must not be tied to another scalar of equal value
MIN_SHARED = 256


def _constants(module: nn.Module) -> Iterable[Tuple[nn.Module, str, Tensor, bool]]:
    """(owner, name, tensor, is_parameter) of every parameter and persistent buffer: what a stream only reads.

    Non-persistent buffers are streaming state (caches, tails, warm-up positions) and are never shared.
    """
    for owner in module.modules():
        for name, parameter in owner._parameters.items():
            if parameter is not None:
                yield owner, name, parameter, True
        for name, buffer in owner._buffers.items():
            if buffer is not None and name not in owner._non_persistent_buffers_set:
                yield owner, name, buffer, False


def share_equal_constants(modules: Iterable[nn.Module]) -> int:
    """Make parameters and persistent buffers that are equal (dtype, shape, values) one tensor, in place.

    Args:
        modules: the streams of the methods of one file (each a private copy).

    Returns:
        The bytes no longer held twice.
    """
    kept: Dict[Tuple[object, ...], List[Tensor]] = {}
    saved = 0
    for module in modules:
        for owner, name, tensor, is_parameter in list(_constants(module)):
            if tensor.numel() < MIN_SHARED:
                continue
            # a cheap fingerprint first (the first values), then equality of every value
            key = (tensor.dtype, tuple(tensor.shape), tensor.device, tuple(tensor.detach().flatten()[:8].tolist()))
            candidates = kept.setdefault(key, [])
            same = next((t for t in candidates if t is tensor or torch.equal(t, tensor)), None)
            if same is None:
                candidates.append(tensor)
            elif same is not tensor:
                saved += tensor.numel() * tensor.element_size()
                if is_parameter:
                    owner._parameters[name] = same
                else:
                    owner._buffers[name] = same
    return saved
