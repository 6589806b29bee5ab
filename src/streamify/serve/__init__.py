"""Many streams beyond one machine: streaming models served on Ray Serve (see docs/serve.md).

* :mod:`streamify.serve.protocol`: the session protocol (frames and messages), free of Ray and sockets.
* :mod:`streamify.serve.session`: one session's stream, numbered buffers, exact resumption on another replica.
* :mod:`streamify.serve.app` and :mod:`streamify.serve.launch`: the Ray Serve application, started and drained.
* :mod:`streamify.serve.client`: the reference client (``streamify send``); :mod:`streamify.serve.cli`: the commands.

Importing this package imports neither Ray nor a WebSocket library; ``app`` and ``launch`` import Ray.
"""
