"""Deprecated: renamed :mod:`streamify.exactness` (streamed output against offline). Import from there."""

import warnings

from streamify.exactness import Comparison, compare_streamed, measure_delay, stream_signal

__all__ = ["Comparison", "compare_streamed", "measure_delay", "stream_signal"]

warnings.warn(
    "streamify.check is renamed streamify.exactness; import from streamify.exactness",
    DeprecationWarning,
    stacklevel=2,
)
