"""Moved to :mod:`streamify.runtime.buffering`; this name stays for code written against it."""

from streamify.runtime.buffering import AnyLengthStream, dtype_name, extra_latency_frames

__all__ = ["AnyLengthStream", "dtype_name", "extra_latency_frames"]
