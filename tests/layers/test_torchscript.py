"""TorchScript: every streaming module scripts before it ever ran, and the scripted model streams as the eager one.

Issue "Streaming core", section 5 (TorchScript) and the "no state created lazily" part of section 3.
"""

from __future__ import annotations

from typing import List, Optional

import pytest
import torch

from core_cases import (
    ALL_KINDS,
    assert_identical,
    build,
    signal,
    sizes_of,
    stream,
)
from streamify.layers import StreamingModule

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.:DeprecationWarning")


def run(model, x: torch.Tensor, plan: List[tuple]) -> list:
    """Outputs of ``model`` for ``plan``: ``(units, reset)`` steps, ``reset`` None, "all" or a list of items."""
    outputs = []
    start = 0
    multiple = int(model.buffer_multiple)
    assert sum(units for units, _ in plan) * multiple <= x.size(-1)
    with torch.no_grad():
        for units, reset in plan:
            if reset == "all":
                model.reset()
            elif reset is not None:
                model.reset(reset)
            size = units * multiple
            outputs.append(model(x[..., start : start + size]))
            start += size
    return outputs


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_scripts_before_running_and_streams_and_resets_as_eager(kind: str) -> None:
    model = build(kind)
    scripted = torch.jit.script(model)
    # nothing was created lazily: the eager model is still a fresh stream and the script has all its state
    assert model.cache_bytes == 0
    assert all(m.stream_batch == 0 for m in model.modules() if isinstance(m, StreamingModule))
    assert scripted.delay == model.delay
    assert scripted.buffer_multiple == model.buffer_multiple
    eager = build(kind)
    x = signal(3, 16 * eager.buffer_multiple, seed=1)
    # buffer sizes vary from call to call; resets of the whole batch and of chosen items in between
    plan: List[tuple] = [(2, None), (1, None), (3, [1]), (2, [0, 2]), (1, None), (4, "all"), (2, [2]), (1, None)]
    scripted_out = run(scripted, x, plan)
    eager_out = run(eager, x, plan)
    for a, b in zip(scripted_out, eager_out):
        assert_identical(a, b)
    # a scripted reset returns to a fresh stream
    scripted.reset()
    sizes = sizes_of(eager, [2, 5])
    assert_identical(stream(scripted, x[..., : sum(sizes)], sizes), stream(build(kind), x[..., : sum(sizes)], sizes))
    # and the scripting did not touch the eager model it was made from
    assert model.cache_bytes == 0


@pytest.mark.parametrize("kind", ["heads", "nested", "gru"])
def test_scripted_model_saves_and_loads(kind: str, tmp_path) -> None:
    path = tmp_path / f"{kind}.pt"
    torch.jit.save(torch.jit.script(build(kind)), str(path))
    loaded = torch.jit.load(str(path))
    eager = build(kind)
    assert loaded.delay == eager.delay
    x = signal(3, 16 * eager.buffer_multiple, seed=2)
    plan: List[tuple] = [(1, None), (3, None), (2, [1]), (5, None), (2, "all"), (3, None)]
    for a, b in zip(run(loaded, x, plan), run(eager, x, plan)):
        assert_identical(a, b)


def test_scripted_model_refuses_bad_buffers_with_the_message() -> None:
    scripted = torch.jit.script(build("sequential"))
    multiple = scripted.buffer_multiple
    assert multiple > 1
    with pytest.raises(Exception, match=r"Sequential: buffer length .* buffer_multiple="):
        scripted(signal(1, multiple + 1))
    scripted(signal(3, multiple))
    with pytest.raises(Exception, match=r"batch size changed from 3 to 1"):
        scripted(signal(1, multiple))
    with pytest.raises(Exception, match=r"reset index 5 is outside"):
        scripted.reset([5])


def test_scripted_reset_signature() -> None:
    """reset is exported with an optional list of items (hosts call reset() and reset([i]))."""
    scripted = torch.jit.script(build("conv"))
    schema = scripted.reset.schema
    arguments = schema.arguments
    assert [a.name for a in arguments][1:] == ["indices"]
    assert str(arguments[1].type) == str(torch._C.OptionalType(torch._C.ListType(torch._C.IntType.get())))
    # both forms run on a fresh and on a running stream
    scripted.reset()
    scripted.reset([0])
    scripted(signal(2, 4))
    indices: Optional[List[int]] = [1]
    scripted.reset(indices)
    scripted.reset(None)
