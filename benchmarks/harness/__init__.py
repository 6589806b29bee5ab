"""The benchmark harness behind ``python benchmarks/run.py``: streaming against offline, exact overlap-add and
cached_conv (not part of the streamify package; ``benchmarks/`` must be on the path).

* :mod:`harness.reference`: the reference models (streamify's RAVE, preset v2), their cached_conv twin, counts;
* :mod:`harness.methods`: the streaming methods and engines behind one interface;
* :mod:`harness.measure`: timing loops and the machine's floor;
* :mod:`harness.memory`: peak memory in a child process;
* :mod:`harness.exactness`: exactness of each method against offline;
* :mod:`harness.profile`: per-layer and per-op profile, the convs' products in sequence;
* :mod:`harness.suite`: the run; :mod:`harness.report`: JSON, plots, markdown;
* :mod:`harness.commands`: the command line of ``benchmarks/run.py``.
"""
