"""ONNX symbolics of the recurrent layers' explicit-state step: one ``LSTM``/``GRU`` node per layer.

:meth:`streamify.layers.recurrent.Recurrent._stream_explicit` runs each RNN layer through
:data:`streamify.layers.recurrent.RNN_WITH_LENGTHS` (item ``b`` runs its first ``lengths[b]`` steps).
Importing this module registers there two autograd functions that compute the same
(:func:`~streamify.layers.recurrent.rnn_with_lengths`) and that the ONNX exporter writes as one node
each (built here, with ``sequence_lens``); the layers never import the export.
"""

from __future__ import annotations

from typing import Sequence

import torch

from streamify.layers.base import StreamingError
from streamify.layers.recurrent import RNN_WITH_LENGTHS, rnn_with_lengths


def _gate_order(g, weight, hidden: int, order: Sequence[int]):
    """Reorder the gate blocks (rows of ``hidden``) of a PyTorch RNN weight or bias for ONNX."""
    blocks = []
    for k in order:
        start = g.op("Constant", value_t=torch.tensor([k * hidden], dtype=torch.long))
        end = g.op("Constant", value_t=torch.tensor([(k + 1) * hidden], dtype=torch.long))
        axis = g.op("Constant", value_t=torch.tensor([0], dtype=torch.long))
        blocks.append(g.op("Slice", weight, start, end, axis))
    return g.op("Concat", *blocks, axis_i=0)


def _unsqueeze0(g, value):
    return g.op("Unsqueeze", value, g.op("Constant", value_t=torch.tensor([0], dtype=torch.long)))


def _squeeze(g, value, axis: int):
    return g.op("Squeeze", value, g.op("Constant", value_t=torch.tensor([axis], dtype=torch.long)))


def _static_size(value, dim: int) -> int:
    sizes = value.type().sizes()
    if sizes is None:
        raise StreamingError("streamify: export_onnx: an RNN weight has no static shape in the traced graph")
    return int(sizes[dim])


def rnn_symbolic(g, kind: str, x, lengths, h0, c0, w_ih, w_hh, b_ih, b_hh):
    """One ONNX LSTM/GRU layer with per-item ``sequence_lens``; returns (y [T, B, H], h [B, H], c [B, H])."""
    hidden = _static_size(w_hh, 1)
    order = [0, 3, 1, 2] if kind == "LSTM" else [1, 0, 2]  # PyTorch ifgo -> ONNX iofc; rzn -> zrh
    w = _unsqueeze0(g, _gate_order(g, w_ih, hidden, order))
    r = _unsqueeze0(g, _gate_order(g, w_hh, hidden, order))
    gates = len(order)
    if b_ih is None or b_hh is None or (hasattr(b_ih, "node") and b_ih.node().mustBeNone()):
        b = g.op("Constant", value_t=torch.zeros(1, 2 * gates * hidden))
    else:
        b = _unsqueeze0(
            g,
            g.op(
                "Concat",
                _gate_order(g, b_ih, hidden, order),
                _gate_order(g, b_hh, hidden, order),
                axis_i=0,
            ),
        )
    seq_lens = g.op("Cast", lengths, to_i=6)  # int32
    h_init = _unsqueeze0(g, h0)
    if kind == "LSTM":
        y, h, c = g.op("LSTM", x, w, r, b, seq_lens, h_init, _unsqueeze0(g, c0), hidden_size_i=hidden, outputs=3)
        return _squeeze(g, y, 1), _squeeze(g, h, 0), _squeeze(g, c, 0)
    y, h = g.op("GRU", x, w, r, b, seq_lens, h_init, hidden_size_i=hidden, linear_before_reset_i=1, outputs=2)
    return _squeeze(g, y, 1), _squeeze(g, h, 0), c0


class _LstmWithLengths(torch.autograd.Function):
    """:func:`~streamify.layers.recurrent.rnn_with_lengths` for an LSTM; exported to ONNX as one ``LSTM`` node."""

    @staticmethod
    def forward(ctx, x, lengths, h0, c0, w_ih, w_hh, b_ih, b_hh):
        return rnn_with_lengths("LSTM", x, lengths, h0, c0, w_ih, w_hh, b_ih, b_hh)

    @staticmethod
    def symbolic(g, x, lengths, h0, c0, w_ih, w_hh, b_ih, b_hh):
        return rnn_symbolic(g, "LSTM", x, lengths, h0, c0, w_ih, w_hh, b_ih, b_hh)


class _GruWithLengths(torch.autograd.Function):
    """:func:`~streamify.layers.recurrent.rnn_with_lengths` for a GRU; exported to ONNX as one ``GRU`` node."""

    @staticmethod
    def forward(ctx, x, lengths, h0, c0, w_ih, w_hh, b_ih, b_hh):
        return rnn_with_lengths("GRU", x, lengths, h0, c0, w_ih, w_hh, b_ih, b_hh)

    @staticmethod
    def symbolic(g, x, lengths, h0, c0, w_ih, w_hh, b_ih, b_hh):
        return rnn_symbolic(g, "GRU", x, lengths, h0, c0, w_ih, w_hh, b_ih, b_hh)


RNN_WITH_LENGTHS["LSTM"] = _LstmWithLengths.apply
RNN_WITH_LENGTHS["GRU"] = _GruWithLengths.apply
