"""The machine-floor probes of ``harness.measure``: what they read, not how fast (no timing asserted)."""

from __future__ import annotations

import math

import torch

from harness.measure import machine_floor, measure_sequence_bandwidth
from harness.reference import RAVE_TINY, build_reference, time_convs, weight_bytes, weight_tensor_bytes


def test_sequence_bandwidth_reads_each_distinct_tensor_once_per_pass(monkeypatch):
    sizes = [4096, 1 << 20, 64 << 10, 12, 3 << 20]
    reps = 3
    read = []
    dot = torch.dot

    def counting_dot(a, b):
        read.append((a.numel(), a.data_ptr()))
        return dot(a, b)

    monkeypatch.setattr(torch, "dot", counting_dot)
    rates = measure_sequence_bandwidth(sizes, reps)
    monkeypatch.undo()
    # a warm-up pass and `reps` timed ones, each reading every tensor once, in the given order
    assert len(read) == len(sizes) * (reps + 1)
    passes = [read[i * len(sizes) : (i + 1) * len(sizes)] for i in range(reps + 1)]
    for one in passes:
        assert [numel for numel, _ in one] == [size // 4 for size in sizes]
        assert len({pointer for _, pointer in one}) == len(sizes)  # distinct buffers
        assert one == passes[0]  # the same buffers every pass
    assert rates["bytes"] == sum(sizes)
    assert rates["tensors"] == len(sizes)
    for key in ("median", "best", "median_seconds"):
        assert rates[key] > 0 and math.isfinite(rates[key])
    assert rates["best"] >= rates["median"]
    assert rates["median"] == rates["bytes"] / rates["median_seconds"]


def test_weight_tensor_bytes_are_the_convs_in_order():
    model = build_reference(RAVE_TINY)
    sizes = weight_tensor_bytes(model)
    assert sum(sizes) == weight_bytes(model)
    folded_convs = time_convs(model)
    assert len(sizes) == len(folded_convs)
    first = folded_convs[0]
    expected = first.weight.numel() * 4 + (0 if first.bias is None else first.bias.numel() * 4)
    assert sizes[0] == expected


def test_machine_floor_records_both_bandwidths():
    before = torch.get_num_threads()
    floor = machine_floor([1 << 16, 1 << 18, 1 << 14], [1], reps=1, quick=True)
    assert torch.get_num_threads() == before
    entry = floor["1"]
    for key in ("bandwidth", "bandwidth_sequence", "bandwidth_sequence_median", "bandwidth_reread", "macs"):
        assert entry[key] > 0 and math.isfinite(entry[key]), key
    # the floor reads the weights at the in-sequence bandwidth
    assert entry["bandwidth"] == entry["bandwidth_sequence"]
    assert entry["bandwidth_sequence"] >= entry["bandwidth_sequence_median"]
