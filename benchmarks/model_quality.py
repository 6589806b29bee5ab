"""Held-out quality of a trained RAVE-style model, for docs/models.md.

    python benchmarks/model_quality.py --model src/streamify/models/weights/small_music.pt \
        --test data/music/test --run runs/music-small --out docs

Writes ``OUT/models-quality.json`` (multiscale spectral distance on the held-out files: the trained
model with and without its noise synthesizer, and the same architecture untrained, seed 0),
``OUT/models-spectrogram.png`` (the demo's built-in clip: input, trained, untrained) and, with
``--run``, ``OUT/models-training.png`` (training and validation distance against the step).
Needs the ``train`` extra (soundfile, soxr, matplotlib; tensorboard for ``--run``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

try:
    import streamify  # noqa: F401
except ImportError:  # a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402

from streamify.models import load_checkpoint, rave  # noqa: E402
from streamify.models.clip import builtin_clip  # noqa: E402
from streamify.training.evaluate import held_out_distance  # noqa: E402
from streamify.training.module import spectrogram_figure  # noqa: E402


def training_curves(run: Path, path: Path) -> dict:
    """Plot ``train/distance`` (smoothed) and ``val/distance`` of a run's TensorBoard log; returns the last values."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (events,) = sorted((run / "logs").glob("events.out.tfevents.*"))[-1:]
    accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
    accumulator.Reload()
    train = accumulator.Scalars("train/distance")
    val = accumulator.Scalars("val/distance")
    figure, axis = plt.subplots(figsize=(7, 3.5))
    steps = [e.step for e in train]
    values = [e.value for e in train]
    smooth = [sum(values[max(0, i - 9) : i + 1]) / len(values[max(0, i - 9) : i + 1]) for i in range(len(values))]
    axis.plot(steps, smooth, label="training batches (mean of 10 logs)")
    axis.plot([e.step for e in val], [e.value for e in val], "o-", label="validation (held-back train files)")
    axis.set_xlabel("step")
    axis.set_ylabel("multiscale spectral distance")
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    return {
        "steps": steps[-1] + 1 if steps else 0,
        "minutes": (train[-1].wall_time - train[0].wall_time) / 60 if train else 0.0,
        "last_val_distance": val[-1].value if val else None,
        "first_val_distance": val[0].value if val else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="weight file or checkpoint of streamify train")
    parser.add_argument("--test", required=True, help="folder of held-out audio")
    parser.add_argument("--run", help="run folder of streamify train (for the training curves)")
    parser.add_argument("--out", default="docs", help="folder of the JSON and the pictures")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    began = time.time()
    model = load_checkpoint(args.model)
    torch.manual_seed(0)
    untrained = rave(model.config, causal=model.causal).eval()
    results = {"model": str(args.model), "test": str(args.test), "preset": model.config.name}
    model.use_noise = False
    results["trained, no noise"] = held_out_distance(model, args.test)
    model.use_noise = True
    torch.manual_seed(0)
    results["trained, with noise"] = held_out_distance(model, args.test)
    untrained.use_noise = False
    results["untrained (seed 0), no noise"] = held_out_distance(untrained, args.test)

    clip = builtin_clip()[..., : model.ratio * (4 * model.sample_rate // model.ratio)]
    model.use_noise = False
    with torch.no_grad():
        signals = [clip[0, 0], model(clip)[0, 0], untrained(clip)[0, 0]]
    titles = ["input: built-in clip (held-out music)", "trained 'small' model", "same architecture, untrained"]
    spectrogram_figure(signals, titles, model.sample_rate).savefig(out / "models-spectrogram.png", dpi=80)
    if args.run:
        results["training"] = training_curves(Path(args.run), out / "models-training.png")
    results["seconds"] = time.time() - began
    (out / "models-quality.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
