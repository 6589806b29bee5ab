"""Shared pytest set-up.

This directory holds no ``__init__.py``: pytest puts it on ``sys.path`` for this
conftest, so test modules anywhere below can ``import helpers`` (tests/helpers.py).
"""

import torch

# the suite streams tiny tensors: thread start-up costs more than it saves (10x on 2 busy cores)
torch.set_num_threads(1)
