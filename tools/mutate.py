"""Plant realistic bugs one at a time and count how many the test suite catches (mutation testing).

Each mutant names a source file, an exact snippet of it (found exactly once), its replacement, and
the tests that should see the bug (a targeted subset, so that the whole run takes minutes). For each
mutant the script copies ``src/`` and ``tests/`` into a temporary folder once, writes the mutated
file into that copy (the checkout is never modified), runs the tests there with the copy first on
``PYTHONPATH``, restores the file, and reports the mutant caught (the tests failed) or missed
(they passed). A baseline run of every targeted test on the unmutated copy comes first: a failing
baseline makes the figure meaningless, and the script stops.

Usage (from the repository root, with the package's test extras installed)::

    python tools/mutate.py              # every mutant; prints one line each and the figure
    python tools/mutate.py --list       # the mutants, without running anything
    python tools/mutate.py --check      # every snippet is still in its file exactly once (fast)
    python tools/mutate.py -k state     # only mutants whose name contains "state"

Exit status: 0 when every mutant run was caught, 1 when one was missed, 2 for a stale mutant (its
snippet is no longer in the code: update the list) or a failing baseline. See docs/testing.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence, Tuple

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutant:
    """One planted bug: ``original`` (found exactly once in ``path``) becomes ``replacement``."""

    name: str
    path: str  #: relative to the repository root
    original: str
    replacement: str
    tests: Tuple[str, ...]  #: pytest arguments (files, node ids, ``-k`` expressions)
    what: str  #: the bug in words


def _m(name: str, path: str, original: str, replacement: str, tests: Sequence[str], what: str) -> Mutant:
    return Mutant(name, path, original, replacement, tuple(tests), what)


LAYERS = "src/streamify/layers/"
MUTANTS: List[Mutant] = [
    # ---------------------------------------------------------------- layers: convolutions and pools
    _m(
        "pad-pool-missing-frame",
        LAYERS + "conv.py",
        "missing = min(max(-self.input_delay, 0), self.cache_len)\n",
        "missing = min(max(-self.input_delay, 0), self.cache_len) - 1\n",
        ["tests/layers/test_missing_input.py"],
        "one cache frame fewer zeroed for input missing after a pad (max pool after a pad)",
    ),
    _m(
        "pad-pool-missing-offset",
        LAYERS + "conv.py",
        "tail = self.cache.narrow(2, self.cache_len - missing, missing)",
        "tail = self.cache.narrow(2, self.cache_len - missing + 1, missing - 1)",
        ["tests/layers/test_missing_input.py"],
        "the zeroed frames of the cache start one frame late",
    ),
    _m(
        "window-used-frames",
        LAYERS + "conv.py",
        "used = (n // self.stride - 1) * self.stride + self.span",
        "used = (n // self.stride - 1) * self.stride + self.span - 1",
        ["tests/layers/test_exactness.py", "-k", "max_pool or avg_pool"],
        "a window op's last window of a call one frame short",
    ),
    _m(
        "strided-cache-phase",
        "src/streamify/timing.py",
        "cache = low + (left_pad - input_delay - low) % stride",
        "cache = low + (left_pad - input_delay - low + 1) % stride",
        ["tests/layers/test_exactness.py", "-k", "max_pool or avg_pool"],
        "a strided conv's decimation phase off by one input frame",
    ),
    _m(
        "strided-cache-negative-delay",
        "src/streamify/timing.py",
        "    if delay < 0:\n        cache -= delay * stride",
        "    if delay < -1:\n        cache -= delay * stride",
        ["tests/layers/test_missing_input.py"],
        "a window op after a pad keeps a delay of -1 (drops an offline frame later layers need)",
    ),
    _m(
        "dilated-span",
        "src/streamify/timing.py",
        "return dilation * (kernel_size - 1) + 1",
        "return dilation * (kernel_size - 1) + (1 if dilation == 1 else 0)",
        ["tests/layers/test_exactness.py", "-k", "conv_grid or max_pool"],
        "the span of a dilated kernel one frame short",
    ),
    # ---------------------------------------------------------------- layers: overlap-add
    _m(
        "overlap-add-tail-before-add",
        LAYERS + "conv_transpose.py",
        "        if self.tail_len > 0:\n            # out of place",
        "        if self.tail_len > 0:\n            next_tail = full.narrow(2, emitted, self.tail_len).detach()\n"
        "            # out of place",
        ["tests/layers/test_overlap_add_paths.py"],
        "the autograd/traced path of a transposed conv takes the next tail before adding the old one",
    ),
    _m(
        "overlap-add-tail-length",
        LAYERS + "conv_transpose.py",
        "self.tail_len = max(self.span - self.stride, 0)",
        "self.tail_len = max(self.span - self.stride - 1, 0)",
        ["tests/layers/test_overlap_add_paths.py"],
        "a transposed conv keeps one tail frame too few",
    ),
    _m(
        "transposed-delay",
        LAYERS + "conv_transpose.py",
        "self.delay = self.input_delay * self.stride + self.padding",
        "self.delay = self.input_delay * self.stride + max(self.padding - 1, 0)",
        ["tests/layers/test_overlap_add_paths.py"],
        "a padded transposed conv reports one frame of delay too few",
    ),
    # ---------------------------------------------------------------- layers: shifts, warm-up, branches
    _m(
        "pad-delay",
        LAYERS + "shift.py",
        "self.delay = self.input_delay - self.left",
        "self.delay = self.input_delay - max(self.left - 1, 0)",
        ["tests/layers/test_exactness.py", "-k", "pad"],
        "a Pad shifts the stream one frame too few",
    ),
    _m(
        "mask-input-boundary",
        LAYERS + "base.py",
        "x = x.masked_fill((position < self.input_delay).unsqueeze(1), self.pad_value)",
        "x = x.masked_fill((position < self.input_delay - 1).unsqueeze(1), self.pad_value)",
        ["tests/layers/test_missing_input.py", "tests/test_state_api.py", "-k", "warm or pool"],
        "the warm-up mask lets through one frame before the offline start",
    ),
    _m(
        "reset-items-warm-position",
        LAYERS + "base.py",
        "                if self.warm_left <= 0:\n                    self.warm_pos.fill_(self.input_delay)",
        "                if self.warm_left <= 0:\n                    self.warm_pos.fill_(0)",
        ["tests/layers/test_state.py", "-k", "reset"],
        "resetting some batch items restarts the warm-up of the others too",
    ),
    _m(
        "branches-align-first-last",
        LAYERS + "containers.py",
        "        target = max(delays)\n        for path, delay in zip(self.paths, delays):",
        "        target = max(delays[0], delays[-1])\n        for path, delay in zip(self.paths, delays):",
        ["tests/layers/test_branches_three_way.py"],
        "branch alignment reads only the first and the last branch",
    ),
    _m(
        "lstm-warm-up-skip",
        LAYERS + "recurrent.py",
        "skip = min(max(self.input_delay - int(self.warm_pos[b]), 0), n)",
        "skip = min(max(self.input_delay - int(self.warm_pos[b]) - 1, 0), n)",
        ["tests/layers/test_exactness.py", "-k", "recurrent"],
        "a recurrent layer after a delay runs one frame before the offline start",
    ),
    _m(
        "periodic-phase",
        LAYERS + "periodic.py",
        "frames = self.position.unsqueeze(1) + steps - self.delay",
        "frames = self.position.unsqueeze(1) + steps - self.delay + 1",
        ["tests/test_doctests.py", "-k", "periodic"],
        "a periodic pattern one frame out of phase with the stream",
    ),
    # ---------------------------------------------------------------- state
    _m(
        "set-state-warm-counter",
        "src/streamify/runtime/state.py",
        "            setattr(module, counter, int(state[_entry_name(name, counter)]))",
        '            setattr(module, counter, int(state[_entry_name(name, "out_warm_left" if counter == "warm_left" '
        "else counter)]))",
        ["tests/test_state_api.py", "-k", "snapshot"],
        "set_state restores the input warm-up counter from the output one",
    ),
    _m(
        "step-unknown-key",
        "src/streamify/runtime/state.py",
        "    if given != expected:",
        "    if not expected <= given:",
        ["tests/test_state_api.py", "-k", "step"],
        "step() and set_state accept unknown state keys",
    ),
    _m(
        "state-entry-length",
        "src/streamify/runtime/state.py",
        "fits = value.size(-1) == current.size(-1)",
        "fits = value.size(-1) >= current.size(-1)",
        ["tests/test_state_api.py", "-k", "fit"],
        "a snapshot with longer caches than the model's is accepted",
    ),
    _m(
        "initial-state-not-reset",
        "src/streamify/runtime/state.py",
        "    reset(probe, list(range(batch)))\n",
        "    reset(probe, list(range(batch - 1)))\n",
        ["tests/test_state_api.py", "-k", "step"],
        "initial_state leaves the last batch item warmed up by the probe buffer",
    ),
    # ---------------------------------------------------------------- conversion (verification only)
    _m(
        "verify-first-schedule-only",
        "src/streamify/convert/verify.py",
        "    for sizes in plans:\n",
        "    for sizes in plans[:1]:\n",
        ["tests/convert/test_verification.py"],
        "verification streams only its first buffer schedule",
    ),
    _m(
        "verify-float64-bar",
        "src/streamify/convert/verify.py",
        "FLOAT64_TOL = 1e-10\n",
        "FLOAT64_TOL = 1e-8\n",
        ["tests/convert/test_verification.py"],
        "verification's float64 bar loosened 100 times",
    ),
    # ---------------------------------------------------------------- buffering (any buffer length)
    _m(
        "any-length-latency",
        "src/streamify/runtime/buffering.py",
        "    return multiple - _gcd(length, multiple)\n",
        "    return max(multiple - _gcd(length, multiple) - 1, 0)\n",
        ["tests/test_buffering.py"],
        "buffers of any length get one frame of latency too few",
    ),
    _m(
        "any-length-reset-queue",
        "src/streamify/runtime/buffering.py",
        "                self.ready = self.ready.index_fill(0, index, 0.0)",
        "                self.ready = self.ready",
        ["tests/test_buffering.py", "tests/test_buffering_reset.py"],
        "a reset item keeps the queued output of its old stream",
    ),
    # ---------------------------------------------------------------- models
    _m(
        "pqmf-tap",
        "src/streamify/models/pqmf.py",
        "            self.conv.weight.copy_(pqmf_filters(bands, taps).unsqueeze(1))\n"
        "        self.conv.weight.requires_grad_(False)\n\n    def forward(self, x: Tensor) -> Tensor:\n"
        "        return self.conv(nn.functional.pad",
        "            self.conv.weight.copy_(pqmf_filters(bands, taps).unsqueeze(1))\n"
        "            self.conv.weight[3, 0, 100] *= 1.01\n"
        "        self.conv.weight.requires_grad_(False)\n\n    def forward(self, x: Tensor) -> Tensor:\n"
        "        return self.conv(nn.functional.pad",
        ["tests/models/test_pqmf.py"],
        "one PQMF analysis filter tap changed by 1 %",
    ),
    _m(
        "pqmf-prototype-tap",
        "src/streamify/models/pqmf.py",
        "    return ideal * window\n",
        "    return ideal * window * (1 + 0.01 * (torch.arange(taps) == 40))\n",
        ["tests/models/test_pqmf.py"],
        "one tap of the PQMF prototype changed by 1 %",
    ),
    _m(
        "pqmf-phase",
        "src/streamify/models/pqmf.py",
        "    phase = (-1.0) ** k * math.pi / 4\n",
        "    phase = (-1.0) ** k * math.pi / 4.04\n",
        ["tests/models/test_pqmf.py"],
        "the PQMF modulation phase off by 1 %",
    ),
    # ---------------------------------------------------------------- host and export
    _m(
        "host-extra-latency",
        "src/streamify/host/models.py",
        "        return self.multiple - math.gcd(int(n), self.multiple)\n",
        "        return max(self.multiple - math.gcd(int(n), self.multiple) - 1, 0)\n",
        ["tests/host/test_any_buffer.py", "tests/host/test_files.py"],
        "the host reports one sample of latency too few for buffers that are not multiples",
    ),
    _m(
        "nn-tilde-params",
        "src/streamify/export/nn_tilde/pipeline.py",
        "params = [method.in_channels, method.in_ratio, method.out_channels, method.out_ratio]",
        "params = [method.in_channels, method.out_ratio, method.out_channels, method.in_ratio]",
        ["tests/export/test_export_nn_tilde.py", "-k", "contract or decode"],
        "an nn~ file's METHOD_params swap the input and output ratios",
    ),
]

# the transposed conv's mutant is two edits: the next tail is also used instead of the one taken after the add
_TAIL_AFTER = "            self.tail = full.narrow(2, emitted, self.tail_len).detach()\n"
_TAIL_BEFORE = "            self.tail = next_tail\n"


def _apply(text: str, mutant: Mutant) -> str:
    text = text.replace(mutant.original, mutant.replacement)
    if mutant.name == "overlap-add-tail-before-add":
        text = text.replace(_TAIL_AFTER, _TAIL_BEFORE)
    return text


def stale(mutant: Mutant) -> str:
    """Why ``mutant`` cannot be planted in the checkout ("" when it can)."""
    path = ROOT / mutant.path
    if not path.is_file():
        return f"{mutant.path} does not exist"
    text = path.read_text()
    count = text.count(mutant.original)
    if count != 1:
        return f"its snippet occurs {count} times in {mutant.path} (must be once)"
    if mutant.name == "overlap-add-tail-before-add" and text.count(_TAIL_AFTER) != 1:
        return f"the tail update occurs {text.count(_TAIL_AFTER)} times in {mutant.path}"
    return ""


def _run_tests(copy: Path, tests: Sequence[str], timeout: float) -> Tuple[int, float]:
    env = dict(os.environ, PYTHONPATH=str(copy / "src"))
    env.pop("STREAMIFY_TRACEBACK", None)
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-header", *tests]
    began = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
        code = done.returncode
    except subprocess.TimeoutExpired:
        code = -1  # a mutant that hangs the tests is caught (a timeout is a failure a user would see)
    return code, time.perf_counter() - began


def _copy_tree(into: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", "*.so", "build")
    for part in ("src", "tests"):
        shutil.copytree(ROOT / part, into / part, ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", into / "pyproject.toml")


def run(mutants: Sequence[Mutant], timeout: float) -> int:
    """Run the baseline then every mutant; print a line each and the figure; the exit status (see the docstring)."""
    bad = [(m.name, stale(m)) for m in mutants if stale(m)]
    for name, why in bad:
        print(f"STALE   {name}: {why}")
    if bad:
        return 2
    with tempfile.TemporaryDirectory(prefix="streamify-mutants-") as folder:
        copy = Path(folder)
        _copy_tree(copy)
        # baseline: each test selection passes without a mutant (the same selection runs once)
        for tests in dict.fromkeys(m.tests for m in mutants):
            code, seconds = _run_tests(copy, tests, timeout)
            if code != 0:
                print(f"BASELINE FAILS (exit {code}, {seconds:.0f} s): pytest {' '.join(tests)}")
                return 2
        caught = 0
        began = time.perf_counter()
        for mutant in mutants:
            target = copy / mutant.path
            original = target.read_text()
            target.write_text(_apply(original, mutant))
            try:
                code, seconds = _run_tests(copy, mutant.tests, timeout)
            finally:
                target.write_text(original)
            verdict = "caught" if code != 0 else "MISSED"
            caught += code != 0
            print(f"{verdict:7} {mutant.name:30} {seconds:5.1f} s  {mutant.what}", flush=True)
        total = len(mutants)
        print(f"\n{caught} of {total} mutants caught ({time.perf_counter() - began:.0f} s for the mutants)")
        return 0 if caught == total else 1


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print the mutants and exit")
    parser.add_argument("--check", action="store_true", help="check that every snippet is still in the code once")
    parser.add_argument("-k", default="", help="only mutants whose name contains this text")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per test run (a hang counts as caught)")
    args = parser.parse_args(list(argv))
    mutants = [m for m in MUTANTS if args.k in m.name]
    if args.list:
        for m in mutants:
            print(f"{m.name:30} {m.path}: {m.what}\n{'':30} tests: {' '.join(m.tests)}")
        return 0
    if args.check:
        bad = [f"{m.name}: {stale(m)}" for m in mutants if stale(m)]
        print("\n".join(bad) if bad else f"{len(mutants)} mutants, every snippet found once")
        return 2 if bad else 0
    return run(mutants, args.timeout)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
