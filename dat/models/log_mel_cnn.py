"""A log-mel front end and a small 2D CNN: the feature extractor of the ``cpu`` preset.

SampleCNN learns its own filterbank from raw samples, which costs most of its compute in
the first layers; on two CPU cores it cannot reach a plateau in minutes. This FE takes
the same raw-waveform input (the same mixed audio, the same crops) and computes a
log-mel spectrogram inside the network, so data, DAT and evaluation are unchanged and
only the FE differs.

``LogMel``: ``|STFT|**2`` (Hann window, ``n_fft``, ``hop_length``, centred) through
``n_mels`` triangular filters on the HTK mel scale from 0 Hz to Nyquist, then
``log(mel + 1e-6)``.
``LogMelCNN``: ``BatchNorm2d(1)`` on the log-mel image, then one block per entry of
``channels``: ``Conv2d(3x3, pad 1) + BN + ReLU + MaxPool2d(2)``; the embedding is the
maximum over frequency, averaged over time, of the last block (``E = channels[-1]``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..config import ModelConfig
from .sample_cnn import waveform_batch

__all__ = ["LogMel", "LogMelCNN", "mel_filterbank"]

LOG_FLOOR = 1e-6


def _hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def _mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """``(n_fft // 2 + 1, n_mels)`` triangular filters, equally spaced in HTK mels, peak 1."""
    bins = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(0.0, _hz_to_mel(sample_rate / 2.0), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - lower) / (centre - lower)
    falling = (upper - bins[None, :]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling)).T.astype(np.float32)


class LogMel(nn.Module):
    """Raw audio to a log-mel image. Shape: ``(B, L)`` -> ``(B, 1, n_mels, 1 + L // hop)``."""

    def __init__(self, sample_rate: int, n_fft: int, hop_length: int, n_mels: int):
        super().__init__()
        self.n_fft, self.hop_length = n_fft, hop_length
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer("filters", torch.from_numpy(mel_filterbank(sample_rate, n_fft, n_mels)),
                             persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        spectrum = torch.stft(audio.float(), self.n_fft, self.hop_length, window=self.window, center=True,
                              return_complex=True)
        power = spectrum.real.square() + spectrum.imag.square()          # (B, F, T)
        mel = torch.matmul(power.transpose(1, 2), self.filters).transpose(1, 2)  # (B, M, T)
        return torch.log(mel + LOG_FLOOR).unsqueeze(1)


class LogMelCNN(nn.Module):
    """Raw waveform to embedding through a log-mel image.

    Shape: ``(B, L)`` or ``(B, 1, L)`` with ``L = config.input_length`` -> ``(B, E)``.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.input_length = config.input_length
        self.front = LogMel(config.sample_rate, config.n_fft, config.hop_length, config.n_mels)
        self.input_norm = nn.BatchNorm2d(1)
        blocks, previous = [], 1
        for width in config.channels:
            blocks += [nn.Conv2d(previous, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2)]
            previous = width
        self.blocks = nn.Sequential(*blocks)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_uniform_(module.weight, mode="fan_in", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = waveform_batch(x, self.input_length, "LogMelCNN")
        image = self.input_norm(self.front(x)).contiguous(memory_format=torch.channels_last)
        features = self.blocks(image)  # (B, E, M', T')
        return features.amax(dim=2).mean(dim=2)

