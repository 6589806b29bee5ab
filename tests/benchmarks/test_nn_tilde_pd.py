"""The PureData side of ``benchmarks/nn_tilde_pd.py``: the patch it writes, and how it judges outputs.

The nn~ external itself is not built here (docs/nn_tilde_build.md); with ``pd`` installed, the patch
without nn~ objects runs in batch mode and must return its input bit for bit, the same number of samples,
with every timer printed. No timing is asserted.
"""

from __future__ import annotations

import re
import shutil
import types
from pathlib import Path

import numpy as np
import pytest

import nn_tilde_pd as bench
from harness.pd_patch import write_patch


def _objects_per_canvas(patch: str) -> list:
    """Object counts of the main canvas and the subpatch, and the connections of each."""
    counts, connects, depth = [0, 0], [[], []], 0
    for line in patch.splitlines():
        if line.startswith("#N canvas") and counts[0] > 0:
            depth = 1
        elif line.startswith("#X restore"):
            depth, counts[0] = 0, counts[0] + 1
        elif line.startswith(("#X obj", "#X msg")):
            counts[depth] += 1
        elif line.startswith("#X connect"):
            connects[depth].append(tuple(int(v) for v in line[:-1].split()[2:]))
    return counts, connects


def test_patch_wires_the_chain_and_every_connection_names_an_object():
    patch = write_patch("model.ts", ["encode", "decode"], [8], 2048, 96000, [86.7, 129.3, 2000.0])
    (main, sub), (main_links, _) = _objects_per_canvas(patch)
    assert all(a < main and c < main for a, _, c, _ in main_links)
    create = re.search(r"#X msg [^;]*\\; pd-work obj.*?;\n", patch, re.S).group(0)
    # the two nn~ objects take the subpatch's next indices; all 8 latent signals go from one to the other
    assert "nn~ model.ts encode" in create and "nn~ model.ts decode" in create
    for channel in range(8):
        assert f"pd-work connect {sub} {channel} {sub + 1} {channel}" in create
    assert f"pd-work connect 1 0 {sub} 0" in create  # tabplay~ into encode
    assert f"pd-work connect {sub + 1} 0 2 0" in create  # decode into tabwrite~
    assert "nnctl0 bufsize 2048" in patch and "nnctl1 bufsize 2048" in patch


def test_compare_and_lag_search_find_a_known_delay():
    ref = bench.test_signal(1.0)
    out = np.concatenate([np.zeros(4032, np.float32), ref])[: ref.size]
    assert bench.compare_at(out, ref, 4032)["max_abs"] == 0.0
    assert bench.compare_at(out, ref, 4031)["max_abs"] > 0.01
    assert bench.best_lag(out, ref, 8000) == 4032


def test_chain_judgement_sees_a_burst_and_when_it_settles():
    ref = np.concatenate([np.zeros(1000, np.float32), bench.test_signal(1.0)])
    out = np.concatenate([np.zeros(6080, np.float32), ref])[: ref.size]
    clean = bench.chain_exactness(types.SimpleNamespace(output=out), ref, 2048)
    assert (clean["lag"], clean["max_abs"], clean["before_max"], clean["settle_samples"]) == (6080, 0.0, 0.0, 0)
    burst = out.copy()
    burst[5000:7500] += 0.1  # before the signal and 420 samples into it
    found = bench.chain_exactness(types.SimpleNamespace(output=burst), ref, 2048)
    assert found["lag"] == 6080 and found["before_max"] == pytest.approx(0.1)
    assert found["settle_samples"] == 7500 - (6080 + 1000)


@pytest.mark.skipif(shutil.which("pd") is None, reason="PureData (pd) is not installed")
def test_patch_without_nn_tilde_runs_in_batch_mode_and_returns_its_input(tmp_path: Path):
    args = types.SimpleNamespace(pd="pd", nn_dir=tmp_path, buffer=2048, timeout=60)
    signal = bench.test_signal(0.5)
    run = bench.run_patch(args, Path(__file__), [], [], signal)
    assert run.output.dtype == np.float32 and np.array_equal(run.output, signal)
    for name in ("load", "mark0", "mark1", "mark2"):
        assert run.value(f"{name}_wall_ms") >= 0 and run.value(f"{name}_cpu_ms") >= 0
    assert run.seen_at("load_wall_ms") >= 0
