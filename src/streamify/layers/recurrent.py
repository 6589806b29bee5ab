"""Streaming recurrent layers: LSTM and GRU over time, hidden state carried across calls.

Input ``[batch, input_size, n]``, output ``[batch, hidden_size, n]`` (``proj_size`` for
a projected LSTM). Recurrence is causal: no delay is added. Frames of a stream that
precede the offline start are skipped (zero output, state unchanged), so that the
recurrence starts where the offline one does.
"""

import copy
import functools
from typing import Callable, Dict, List, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from streamify.layers.base import StreamingError, StreamingModule


class Recurrent(StreamingModule):
    """Common logic of :class:`LSTM` and :class:`GRU`.

    State: ``hidden`` ``[batch, num_layers, out_size]`` and ``cell``
    ``[batch, num_layers, hidden_size]`` (empty for a GRU).
    """

    _state_buffers = ("hidden", "cell")

    def __init__(self, rnn: Union[nn.LSTM, nn.GRU], cell_size: int) -> None:
        super().__init__()
        if rnn.bidirectional:
            raise StreamingError(
                f"streamify: {type(self).__name__}: a bidirectional recurrent layer reads the whole future "
                "of the signal and cannot stream; use a unidirectional one"
            )
        self.rnn = rnn
        self.batch_first = bool(rnn.batch_first)
        self.num_layers = int(rnn.num_layers)
        self.in_channels = int(rnn.input_size)
        self.out_channels = int(rnn.proj_size) if getattr(rnn, "proj_size", 0) else int(rnn.hidden_size)
        self.cell_size = cell_size
        self.receptive_field = -1
        dtype = next(rnn.parameters()).dtype
        self.dtype_marker = torch.zeros(0, dtype=dtype)
        self.register_buffer(
            "hidden", torch.zeros(0, self.num_layers, self.out_channels, dtype=dtype), persistent=False
        )
        self.register_buffer("cell", torch.zeros(0, self.num_layers, cell_size, dtype=dtype), persistent=False)

    def _allocate(self, x: Tensor) -> None:
        batch = x.size(0)
        self.hidden = torch.zeros(batch, self.num_layers, self.out_channels, dtype=x.dtype, device=x.device)
        self.cell = torch.zeros(batch, self.num_layers, self.cell_size, dtype=x.dtype, device=x.device)

    def _release_state(self) -> None:
        self.hidden = self.hidden[:0]
        self.cell = self.cell[:0]

    def _reset_items(self, index: Tensor) -> None:
        self.hidden.index_fill_(0, index, 0.0)
        self.cell.index_fill_(0, index, 0.0)

    def _run(self, x: Tensor, hidden: Tensor, cell: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Run the recurrence over ``x`` ``[batch, time, channels]`` from batch-first states (subclasses)."""
        raise NotImplementedError

    def _sequence(self, x: Tensor) -> Tensor:
        """``[batch, channels, time]`` to the layout the wrapped module reads."""
        x = x.transpose(1, 2)
        return x if self.batch_first else x.transpose(0, 1)

    def _unsequence(self, y: Tensor) -> Tensor:
        if not self.batch_first:
            y = y.transpose(0, 1)
        return y.transpose(1, 2)

    def stream(self, x: Tensor) -> Tensor:
        if self.explicit_state:
            return self._stream_explicit(x)
        if self.warm_left <= 0:
            y, hidden, cell = self._run(x, self.hidden, self.cell)
            self.hidden, self.cell = hidden.detach(), cell.detach()
            return y
        # warm-up: skip, per batch item, the frames before the offline start
        n = x.size(-1)
        y = x.new_zeros(x.size(0), self.out_channels, n)
        # own copies: the states may be views made under no_grad, which grad mode forbids writing into
        self.hidden = self.hidden.clone()
        self.cell = self.cell.clone()
        for b in range(x.size(0)):
            skip = min(max(self.input_delay - int(self.warm_pos[b]), 0), n)
            if skip < n:
                item_y, item_h, item_c = self._run(x[b : b + 1, :, skip:], self.hidden[b : b + 1], self.cell[b : b + 1])
                y[b : b + 1, :, skip:] = item_y
                self.hidden[b : b + 1] = item_h.detach()
                self.cell[b : b + 1] = item_c.detach()
        self.warm_pos = torch.clamp(self.warm_pos + n, max=self.input_delay)
        self.warm_left -= n
        return y

    @torch.jit.unused  # (no ``from __future__ import annotations`` here: TorchScript reads this signature)
    def _stream_explicit(self, x: Tensor) -> Tensor:
        """:meth:`stream` with tensor ops only, the warm-up skip done by per-item sequence lengths.

        Item ``b`` skips its first ``skip_b = clamp(input_delay - warm_pos_b, 0, n)`` frames: its
        valid frames are gathered to the front, run for ``n - skip_b`` steps from its state (one
        :func:`rnn_with_lengths` per layer, ONNX's LSTM/GRU with ``sequence_lens``), and gathered
        back behind ``skip_b`` zero frames. Not for TorchScript (nn~ files script :meth:`stream`).
        """
        if getattr(self.rnn, "proj_size", 0):
            raise StreamingError(
                f"streamify: {self.layer_name}: an LSTM with proj_size has no explicit-state step (ONNX's LSTM "
                "operator lacks the projection); use an LSTM without projection (or a Linear after it)"
            )
        if self.input_delay <= 0:
            y, hidden, cell = self._run(x, self.hidden, self.cell)
            self.hidden, self.cell = hidden.detach(), cell.detach()
            return y
        rnn = self.rnn
        lstm = isinstance(self, LSTM)
        n = x.size(-1)
        steps = torch.arange(n, device=x.device).unsqueeze(0)  # [1, n]
        skip = torch.clamp(torch.clamp(self.input_delay - self.warm_pos, min=0), max=n).unsqueeze(1)  # [batch, 1]
        lengths = (n - skip).squeeze(1)  # [batch]
        if not torch.jit.is_tracing() and bool((skip == 0).all()):
            # eager, past every item's warm-up: the whole batch at once, as the stateful stream runs it
            y, hidden, cell = self._run(x, self.hidden, self.cell)
            self.hidden, self.cell = hidden.detach(), cell.detach()
            self.warm_pos = torch.clamp(self.warm_pos + n, max=self.input_delay)
            return y
        front = torch.clamp(steps + skip, max=n - 1)
        seq = torch.gather(x, 2, front.unsqueeze(1).expand(-1, x.size(1), -1)).permute(2, 0, 1)  # [n, batch, ch]
        hiddens: List[Tensor] = []
        cells: List[Tensor] = []
        for layer in range(self.num_layers):
            biases = (
                (getattr(rnn, f"bias_ih_l{layer}"), getattr(rnn, f"bias_hh_l{layer}")) if rnn.bias else (None, None)
            )
            seq, h, c = RNN_WITH_LENGTHS["LSTM" if lstm else "GRU"](
                seq,
                lengths,
                self.hidden[:, layer],
                self.cell[:, layer] if lstm else self.hidden[:, layer],
                getattr(rnn, f"weight_ih_l{layer}"),
                getattr(rnn, f"weight_hh_l{layer}"),
                *biases,
            )
            hiddens.append(h)
            cells.append(c)
        y = seq.permute(1, 2, 0)  # [batch, hidden, n]
        back = torch.clamp(steps - skip, min=0)
        y = torch.gather(y, 2, back.unsqueeze(1).expand(-1, y.size(1), -1))
        y = y.masked_fill((steps < skip).unsqueeze(1), 0.0)
        active = (lengths > 0).view(-1, 1, 1)
        self.hidden = torch.where(active, torch.stack(hiddens, 1), self.hidden).detach()
        if lstm:
            self.cell = torch.where(active, torch.stack(cells, 1), self.cell).detach()
        self.warm_pos = torch.clamp(self.warm_pos + n, max=self.input_delay)
        return y

    def offline(self, x: Tensor) -> Tensor:
        hidden = x.new_zeros(x.size(0), self.num_layers, self.out_channels)
        cell = x.new_zeros(x.size(0), self.num_layers, self.cell_size)
        y, _, _ = self._run(x, hidden, cell)
        return y


class LSTM(Recurrent):
    """Streaming LSTM; same arguments as :class:`torch.nn.LSTM` (unidirectional), on ``[batch, channels, time]``.

    The hidden and cell states are carried from one call to the next: no delay.

    Shape:
        input ``[batch, input_size, n]``, any ``n``; output ``[batch, hidden_size, n]``
        (``proj_size`` channels where it is set), in step with the offline output.

    >>> import torch
    >>> from streamify.layers import LSTM
    >>> lstm = LSTM(3, 5, num_layers=2)
    >>> x = torch.randn(2, 3, 12)
    >>> y = torch.cat([lstm(x[..., :5]), lstm(x[..., 5:])], -1)
    >>> y.shape, lstm.delay
    (torch.Size([2, 5, 12]), 0)
    >>> torch.allclose(y, lstm.offline(x), atol=1e-6)
    True
    """

    def __init__(self, *args, **kwargs) -> None:
        self._wrap(nn.LSTM(*args, **kwargs))

    @classmethod
    def from_torch(cls, lstm: nn.LSTM) -> "LSTM":
        """A streaming copy of ``lstm`` (its weights copied)."""
        module = cls.__new__(cls)
        module._wrap(copy.deepcopy(lstm))
        return module

    def _wrap(self, lstm: nn.LSTM) -> None:
        Recurrent.__init__(self, lstm, int(lstm.hidden_size))

    def _run(self, x: Tensor, hidden: Tensor, cell: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        state = (hidden.transpose(0, 1).contiguous(), cell.transpose(0, 1).contiguous())
        y, (h, c) = self.rnn(self._sequence(x), state)
        return self._unsequence(y), h.transpose(0, 1), c.transpose(0, 1)


class GRU(Recurrent):
    """Streaming GRU; same arguments as :class:`torch.nn.GRU` (unidirectional), on ``[batch, channels, time]``.

    The hidden state is carried from one call to the next: no delay.

    Shape:
        input ``[batch, input_size, n]``, any ``n``; output ``[batch, hidden_size, n]``, in step
        with the offline output.

    >>> import torch
    >>> from streamify.layers import GRU
    >>> gru = GRU(3, 5)
    >>> x = torch.randn(2, 3, 12)
    >>> y = torch.cat([gru(x[..., :5]), gru(x[..., 5:])], -1)
    >>> y.shape, gru.delay
    (torch.Size([2, 5, 12]), 0)
    >>> torch.allclose(y, gru.offline(x), atol=1e-6)
    True
    """

    def __init__(self, *args, **kwargs) -> None:
        self._wrap(nn.GRU(*args, **kwargs))

    @classmethod
    def from_torch(cls, gru: nn.GRU) -> "GRU":
        """A streaming copy of ``gru`` (its weights copied)."""
        module = cls.__new__(cls)
        module._wrap(copy.deepcopy(gru))
        return module

    def _wrap(self, gru: nn.GRU) -> None:
        Recurrent.__init__(self, gru, 0)

    def _run(self, x: Tensor, hidden: Tensor, cell: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        y, h = self.rnn(self._sequence(x), hidden.transpose(0, 1).contiguous())
        return self._unsequence(y), h.transpose(0, 1), cell


def rnn_with_lengths(
    kind: str,
    x: Tensor,
    lengths: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Optional[Tensor],
    b_hh: Optional[Tensor],
) -> Tuple[Tensor, Tensor, Tensor]:
    """One LSTM/GRU layer over ``x`` ``[T, batch, channels]`` where item ``b`` runs its first ``lengths[b]`` steps.

    From states ``h0``, ``c0`` ``[batch, hidden]`` (``c0`` ignored by a GRU); returns ``y`` ``[T, batch, hidden]``
    (zero past each item's length) and the last states ``[batch, hidden]`` (zero for an item of length 0),
    as ONNX's LSTM and GRU operators with ``sequence_lens`` compute them.
    """
    steps, batch = x.size(0), x.size(1)
    hidden = w_hh.size(1)
    y = x.new_zeros(steps, batch, hidden)
    h_out, c_out = h0.clone(), c0.clone()
    params = [w_ih, w_hh] + ([b_ih, b_hh] if b_ih is not None and b_hh is not None else [])
    for b in range(batch):
        length = int(lengths[b])
        if length <= 0:
            h_out[b] = 0.0
            c_out[b] = 0.0
            continue
        seq = x[:length, b : b + 1]
        if kind == "LSTM":
            out, h, c = torch.lstm(
                seq, (h0[b : b + 1].unsqueeze(0), c0[b : b + 1].unsqueeze(0)), params, b_ih is not None, 1, 0.0,
                False, False, False,
            )  # fmt: skip
            c_out[b] = c[0, 0]
        else:
            out, h = torch.gru(seq, h0[b : b + 1].unsqueeze(0), params, b_ih is not None, 1, 0.0, False, False, False)
        y[:length, b] = out[:, 0]
        h_out[b] = h[0, 0]
    return y, h_out, c_out


#: how :meth:`Recurrent._stream_explicit` runs one RNN layer with per-item lengths, by kind ("LSTM", "GRU"):
#: :func:`rnn_with_lengths` here; the ONNX export (:mod:`streamify.export.onnx_export.rnn`) registers its
#: autograd functions, which compute the same and export as one ONNX ``LSTM``/``GRU`` node
RNN_WITH_LENGTHS: Dict[str, Callable[..., Tuple[Tensor, Tensor, Tensor]]] = {
    "LSTM": functools.partial(rnn_with_lengths, "LSTM"),
    "GRU": functools.partial(rnn_with_lengths, "GRU"),
}
