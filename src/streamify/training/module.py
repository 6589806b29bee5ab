"""The LightningModule that trains the RAVE-style model (two phases, manual optimization).

* Phase 1 (steps ``< phase2_step``): multiscale spectral distance of the reconstruction
  (decoded from a posterior sample) to the input, plus ``beta`` times the KL divergence;
  ``beta`` rises log-linearly from ``beta_start`` to ``beta`` over ``beta_warmup`` steps.
* Phase 2 (from ``phase2_step``): the encoder is frozen (as in RAVE); the decoder also gets the
  hinge adversarial loss of multi-scale and multi-period discriminators and feature matching.

A step is one batch: the discriminators' optimizer steps outside Lightning's step count, so
``max_steps`` counts batches in both phases. Each step seeds torch's generator from
``(seed, step, rank)``, so a resumed run draws what an unbroken one would.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional

import lightning as L
import torch
from torch import Tensor

from streamify.models.rave import rave
from streamify.training.discriminators import Discriminators
from streamify.training.losses import (
    discriminator_hinge,
    feature_matching,
    generator_hinge,
    kl_divergence,
    multiscale_spectral_distance,
)


class RaveTraining(L.LightningModule):
    """Trains ``rave(preset, causal)`` (weight-normed) on batches ``[B, 1, n]``."""

    def __init__(
        self,
        preset: str = "small",
        causal: bool = False,
        learning_rate: float = 3e-4,
        beta: float = 0.01,
        beta_start: float = 1e-4,
        beta_warmup: int = 2000,
        phase2_step: int = 1_000_000,
        feature_weight: float = 10.0,
        seed: int = 0,
        log_audio: int = 2,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.model = rave(preset, causal=causal, weight_norm=True)
        self.discriminator = Discriminators()
        self.register_buffer("step_count", torch.zeros((), dtype=torch.long))
        self.logged_inputs = False

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        hp = self.hparams
        generator = [p for p in self.model.parameters() if p.requires_grad]
        discriminator = [p for p in self.discriminator.parameters() if p.requires_grad]
        return (
            torch.optim.Adam(generator, hp.learning_rate, betas=(0.5, 0.9)),
            torch.optim.Adam(discriminator, hp.learning_rate, betas=(0.5, 0.9)),
        )

    def beta_at(self, step: int) -> float:
        """KL weight at ``step``: log-linear warm-up from ``beta_start`` to ``beta``."""
        hp = self.hparams
        if step >= hp.beta_warmup or hp.beta_start <= 0:
            return float(hp.beta)
        progress = step / max(1, hp.beta_warmup)
        return float(math.exp(math.log(hp.beta_start) + progress * (math.log(hp.beta) - math.log(hp.beta_start))))

    def training_step(self, batch: Tensor, batch_idx: int) -> Dict[str, Tensor]:
        hp = self.hparams
        step = int(self.step_count.item())
        torch.manual_seed(hash((hp.seed, step, self.global_rank)) % (1 << 62))
        x = batch
        opt_g, opt_d = self.optimizers()
        adversarial = step >= hp.phase2_step
        model = self.model
        if adversarial:
            with torch.no_grad():
                mean, std = model.posterior(x)
            kl = torch.zeros((), device=x.device)
        else:
            mean, std = model.posterior(x)
            kl = kl_divergence(mean, std)
        z = mean + std * torch.randn_like(std)
        y = model.decode(z)
        distance = multiscale_spectral_distance(y, x)
        beta = self.beta_at(step)
        loss = distance + beta * kl
        logs = {"train/distance": distance.detach(), "train/kl": kl.detach(), "train/beta": torch.tensor(beta)}
        if adversarial:
            real_scores, real_features = self.discriminator(x)
            fake_scores, _ = self.discriminator(y.detach())
            loss_d = discriminator_hinge(real_scores, fake_scores)
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(loss_d)
            opt_d.optimizer.step()  # not counted in global_step: a step is a batch
            fake_scores, fake_features = self.discriminator(y)
            adv = generator_hinge(fake_scores)
            fm = feature_matching(real_features, fake_features)
            loss = loss + adv + hp.feature_weight * fm
            logs.update({"train/loss_d": loss_d.detach(), "train/adversarial": adv.detach(), "train/features": fm})
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt_g.step()
        self.step_count += 1
        logs["train/loss"] = loss.detach()
        self.log_dict({k: v.detach() if isinstance(v, Tensor) else v for k, v in logs.items()}, prog_bar=False)
        self.log("loss", loss.detach(), prog_bar=True, logger=False)
        self.log("phase", 2.0 if adversarial else 1.0, prog_bar=True, logger=False)
        return {"loss": loss.detach()}

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self.model.train()

    # ------------------------------------------------------------------ validation
    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        y = self.model(batch)
        distance = multiscale_spectral_distance(y, batch)
        self.log("val/distance", distance, sync_dist=True, prog_bar=True, batch_size=batch.size(0))
        if batch_idx == 0 and self.global_rank == 0:
            self._log_media(batch, y)

    def _log_media(self, x: Tensor, y: Tensor) -> None:
        writer = getattr(self.logger, "experiment", None)
        if writer is None or not hasattr(writer, "add_audio"):
            return
        rate = self.model.sample_rate
        step = int(self.step_count.item())
        count = min(self.hparams.log_audio, x.size(0))
        for i in range(count):
            if not self.logged_inputs:
                writer.add_audio(f"input/{i}", x[i, 0].float().cpu().clamp(-1, 1), step, sample_rate=rate)
            writer.add_audio(f"reconstruction/{i}", y[i, 0].float().cpu().clamp(-1, 1), step, sample_rate=rate)
        figure = spectrogram_figure(x[0, 0], y[0, 0], rate)
        if figure is not None:
            writer.add_figure("spectrogram", figure, step)
        self.logged_inputs = True

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        checkpoint["streamify"] = {"preset": self.hparams.preset, "causal": bool(self.hparams.causal)}


def spectrogram_figure(x: Tensor, y: Tensor, sample_rate: int, titles=("input", "reconstruction")) -> Optional[Any]:
    """A matplotlib figure: log-magnitude spectrograms of ``x`` and ``y`` (``[n]`` each) one above the other."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    figure, axes = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    for axis, signal, title in zip(axes, (x, y), titles):
        window = torch.hann_window(1024, dtype=torch.float32)
        spectrum = torch.stft(signal.float().cpu(), 1024, 256, window=window, return_complex=True).abs()
        image = 20 * torch.log10(spectrum + 1e-5)
        seconds = signal.numel() / sample_rate
        axis.imshow(
            image.numpy(),
            origin="lower",
            aspect="auto",
            extent=(0, seconds, 0, sample_rate / 2000),
            vmin=-80,
            vmax=float(image.max()),
            cmap="magma",
        )
        axis.set_title(title)
        axis.set_ylabel("kHz")
    axes[-1].set_xlabel("seconds")
    figure.tight_layout()
    return figure
