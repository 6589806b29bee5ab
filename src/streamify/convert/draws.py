"""Random draws during verification: every draw replaced by zeros (a normal draw by its mean).

A model that draws noise (posterior sampling, a noise synthesizer) streams with real draws, new for each
buffer; no stream equals an offline run draw for draw. Its structure is verified with the draws replaced:
:class:`ZeroDraws` is a dispatch mode under which the model, the streaming graph run offline and the
streamed graph all draw zeros, so the comparison is exact again and an off-by-one still fails.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten

#: aten ops that draw (in-place variants included); their results are replaced by zeros
RANDOM_OPS = {
    aten.randn, aten.rand, aten.randint, aten.randn_like, aten.rand_like, aten.randint_like, aten.normal,
    aten.normal_, aten.uniform, aten.uniform_, aten.bernoulli, aten.bernoulli_, aten.exponential,
    aten.exponential_, aten.poisson, aten.random_, aten.cauchy_, aten.log_normal_, aten.geometric_,
}  # fmt: skip


class ZeroDraws(TorchDispatchMode):
    """Within this mode, random ops return zeros (``normal(mean, std)``: ``mean``), shapes and dtypes kept."""

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func.overloadpacket not in RANDOM_OPS or not isinstance(out, torch.Tensor):
            return out
        with torch.no_grad():
            if func.overloadpacket in (aten.normal, aten.normal_):
                mean = kwargs.get("mean", args[1] if func.overloadpacket is aten.normal_ else args[0])
                mean = 0.0 if not isinstance(mean, (torch.Tensor, float, int)) else mean
                out.copy_(torch.as_tensor(mean, dtype=out.dtype).expand_as(out))
            else:
                out.zero_()
        return out
