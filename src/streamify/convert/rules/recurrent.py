"""Recurrences: ``aten.lstm`` / ``aten.gru`` become :class:`~streamify.layers.LSTM` / ``GRU``, the hidden state
carried across buffers (delay: that of their input). Refused: a given initial state, bidirectional
recurrences (they read the future), and reading the final state (a stream never ends).
"""

from __future__ import annotations

import torch
import torch.fx as fx
from torch import nn

from streamify.convert.rewrite import Pairs, Rewriter
from streamify.convert.rules import op_rule
from streamify.layers.recurrent import GRU, LSTM

aten = torch.ops.aten


def _rnn(kind: str):
    def rule(rw: Rewriter, node: fx.Node, time_args: Pairs) -> None:
        arg, info = time_args[0]
        if arg is not node.args[0]:
            raise rw.fail(node, "takes its state from the signal", "let the recurrence start from zeros")
        hx = rw.arg(node, 1, "hx")
        states = hx if isinstance(hx, (list, tuple)) else [hx]
        if any(bool(h.any()) for h in states):
            raise rw.fail(node, "starts the recurrence from a given state", "let it start from zeros")
        params = rw.static(node, 2, "params")
        has_biases, layers = rw.static(node, 3, "has_biases"), rw.static(node, 4, "num_layers")
        bidirectional, batch_first = rw.static(node, 7, "bidirectional"), rw.static(node, 8, "batch_first")
        if bidirectional:
            raise rw.fail(node, "runs a bidirectional recurrence (it reads the future)", "use a unidirectional one")
        x = rw.values[arg]
        if x.dim() != 3 or info.dim != (1 if batch_first else 0):
            raise rw.fail(node, f"gets a tensor whose time axis is {info.dim}", "check the permutes before it")
        per = 4 if has_biases else 2
        w_ih = params[0]
        hidden = params[1].size(1)
        if w_ih.size(0) != (4 if kind == "lstm" else 3) * hidden:
            raise rw.fail(node, "uses LSTM projections (proj_size)", "use proj_size=0")
        cls = nn.LSTM if kind == "lstm" else nn.GRU
        module = cls(w_ih.size(1), hidden, layers, bias=has_biases, batch_first=batch_first, dtype=w_ih.dtype)
        for layer in range(layers):
            names = [f"weight_ih_l{layer}", f"weight_hh_l{layer}"] + (
                [f"bias_ih_l{layer}", f"bias_hh_l{layer}"] if has_biases else []
            )
            for name, value in zip(names, params[layer * per : (layer + 1) * per]):
                getattr(module, name).data = value.detach().clone()
        streaming = (LSTM if kind == "lstm" else GRU).from_torch(module)
        y, out = rw.emit_stream(streaming, rw.env[arg], info, 3)
        rw.env[node] = (y, None, None) if kind == "lstm" else (y, None)
        rw.info[node] = (out, None, None) if kind == "lstm" else (out, None)

    return rule


op_rule(aten.lstm)(_rnn("lstm"))
op_rule(aten.gru)(_rnn("gru"))
