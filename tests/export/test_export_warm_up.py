"""The exported file compiles its streams when the host loads it, not at the host's first audio calls.

TorchScript's profiling executor runs a function's first call with profiling nodes and optimises
it at the second: seconds for a large model. ``get_methods()`` (which nn~ calls at load) warms
the file up; the streams are called through an interface, so the host's calls reach the very
functions the warm-up compiled. Checked without timing: the graph a call runs still holds
``prim::profile`` nodes while its function is not optimised.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from export_models import PowerOfTwoAutoencoder, build

from streamify.export import export_nn_tilde

PROBE = """
import sys, torch
loaded = torch.jit.load(sys.argv[1])
if sys.argv[2] == "host":
    loaded.get_methods()  # what nn~ does when it loads a file
calls = {}
with torch.inference_mode():
    for index, (name, channels) in enumerate((("encode", 1), ("decode", 4))):
        stream = getattr(loaded, "stream_" + str(index))
        stream.stream.advance(torch.zeros(1, channels, 64))  # what the host's calls reach (after one validation)
        calls[name + ".advance"] = str(torch.jit.last_executed_optimized_graph())
        stream.stream.reset(None)
        calls[name + ".reset"] = str(torch.jit.last_executed_optimized_graph())
print(sorted(name for name, graph in calls.items() if "prim::profile" in graph))
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("warm") / "ae.ts"
    example = torch.randn(1, 1, 512, generator=torch.Generator().manual_seed(0))
    export_nn_tilde(build(PowerOfTwoAutoencoder), path, example, methods=("encode", "decode"))
    return path


def _probe(path, mode: str) -> list:
    result = subprocess.run([sys.executable, "-c", PROBE, str(path), mode], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.splitlines()


@pytest.mark.slow  # two fresh processes
def test_get_methods_compiles_every_stream_before_the_first_host_call(exported):
    cold = _probe(exported, "cold")
    assert cold[0] == "['decode.advance', 'decode.reset', 'encode.advance', 'encode.reset']"  # the probe sees it
    host = _probe(exported, "host")
    assert host[0] == "[]"  # after get_methods, every stream function runs its optimised plan from its first call


def test_the_file_is_saved_cold_and_warm_up_leaves_fresh_streams(exported):
    loaded = torch.jit.load(str(exported))
    assert loaded.warmed is False
    assert loaded.get_methods() == ["encode", "decode"] and loaded.warmed is True
    assert loaded.stream_0.stream_batch == 0 and loaded.stream_1.stream_batch == 0
    assert "warm_up" in loaded.get_methods.code
    # the methods call their stream through the interface (not inlined: the same function the warm-up compiled),
    # also once their own calls are inlined and constants folded, as the graph executor does before it optimises
    graph = loaded.encode.graph.copy()
    torch._C._jit_pass_inline(graph)
    torch._C._jit_pass_constant_propagation(graph)  # a method's constant index leaves one stream
    assert "StreamInterface" in str(graph) and "stream_0" in str(graph) and "stream_1" not in str(graph)
