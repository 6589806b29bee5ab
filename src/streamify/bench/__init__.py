"""Benchmarks of streaming against offline, exact overlap-add and cached_conv (``streamify bench``).

* :mod:`streamify.bench.reference`: the RAVE-v2-sized reference model, its cached_conv twin, counts;
* :mod:`streamify.bench.methods`: the streaming methods and engines behind one interface;
* :mod:`streamify.bench.measure`: timing loops and the machine's floor;
* :mod:`streamify.bench.memory`: peak memory in a child process;
* :mod:`streamify.bench.checks`: exactness of each method against offline;
* :mod:`streamify.bench.profile`: per-layer and per-op profile, short-input kernel experiment;
* :mod:`streamify.bench.suite`: the run; :mod:`streamify.bench.report`: JSON, plots, markdown;
* :mod:`streamify.bench.commands`: ``register(app)`` adds the ``bench`` command.
"""

from streamify.bench.suite import Options, run_suite

__all__ = ["Options", "run_suite"]
