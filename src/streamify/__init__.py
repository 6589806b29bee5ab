"""streamify: run trained convolutional audio networks in real time, exactly.

Streaming models process audio buffer by buffer and return what the offline model
returns, delayed by a fixed, reported number of frames.
"""

from streamify.layers import StreamingError, StreamingModule
from streamify.state import get_state, reset, set_state, set_streaming

__version__ = "0.1.0"

__all__ = ["StreamingError", "StreamingModule", "get_state", "reset", "set_state", "set_streaming", "__version__"]
