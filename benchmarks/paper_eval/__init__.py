"""The paper's evaluation (Caillon & Esling, DAFx 2022) on our own trained models: ``benchmarks/paper.py``.

Modules: :mod:`.metrics` (distances to the input, boundary jumps), :mod:`.methods` (offline, streamed,
naively chunked and overlap-add runs of one model, timed on one thread), :mod:`.signals` (test clips;
synthetic sets for ``--quick``), :mod:`.training` (train or reuse the runs), :mod:`.evaluate` (the rows),
:mod:`.report` (the table, the verdicts, ``docs/paper.md``) and :mod:`.plots` (the PNG figures).
"""
