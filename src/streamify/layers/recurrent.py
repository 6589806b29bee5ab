"""Streaming recurrent layers: LSTM and GRU over time, hidden state carried across calls.

Input ``[batch, input_size, n]``, output ``[batch, hidden_size, n]`` (``proj_size`` for
a projected LSTM). Recurrence is causal: no delay is added. Frames of a stream that
precede the offline start are skipped (zero output, state unchanged), so that the
recurrence starts where the offline one does.
"""

from __future__ import annotations

import copy
from typing import Tuple, Union

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
    def from_torch(cls, lstm: nn.LSTM) -> LSTM:
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
    def from_torch(cls, gru: nn.GRU) -> GRU:
        """A streaming copy of ``gru`` (its weights copied)."""
        module = cls.__new__(cls)
        module._wrap(copy.deepcopy(gru))
        return module

    def _wrap(self, gru: nn.GRU) -> None:
        Recurrent.__init__(self, gru, 0)

    def _run(self, x: Tensor, hidden: Tensor, cell: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        y, h = self.rnn(self._sequence(x), hidden.transpose(0, 1).contiguous())
        return self._unsequence(y), h.transpose(0, 1), cell
