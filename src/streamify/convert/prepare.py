"""The converter's private copy of a model: evaluation mode, weight norms folded into plain weights."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils import remove_weight_norm

from streamify.runtime.state import set_streaming


def _old_weight_norms(module: nn.Module):
    """``(hook, name)`` of the weight-norm hooks installed by ``torch.nn.utils.weight_norm``."""
    for hook in module._forward_pre_hooks.values():
        if type(hook).__name__ == "WeightNorm":
            yield hook, hook.name


def private_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` in eval mode, without gradients, with weight norms folded.

    The old ``weight_norm`` hook leaves a computed (non-leaf) weight tensor that
    ``copy.deepcopy`` refuses; those tensors are copied detached, and the hooks are
    folded into plain weights. ``torch.nn.utils.parametrize`` weights (the new weight
    norm) stay: removing them would alter the class the copy shares with the
    original; the streaming layers read their computed weights, which folds them.
    """
    memo = {}
    for module in model.modules():
        for _, name in _old_weight_norms(module):
            weight = getattr(module, name, None)
            if isinstance(weight, torch.Tensor) and not weight.is_leaf:
                memo[id(weight)] = weight.detach().clone()
    model = copy.deepcopy(model, memo)
    for module in model.modules():
        for _, name in list(_old_weight_norms(module)):
            remove_weight_norm(module, name)
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    set_streaming(model, False)  # streamify layers inside run offline while the model is captured
    return model
