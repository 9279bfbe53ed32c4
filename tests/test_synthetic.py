"""The synthetic corpus's tags are audible: what a tagger trained on it can learn."""

from __future__ import annotations

import numpy as np

from noisemix import rng
from noisemix.synthetic import music_audio

RATE = 22050


def _dominant_hz(audio: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(audio))
    return float(np.fft.rfftfreq(audio.size, 1 / RATE)[np.argmax(spectrum)])


def test_low_and_high_clips_sit_in_separate_registers():
    for number in range(24):
        gen = rng.generator(0, rng.stable_key("register", number))
        low = _dominant_hz(music_audio(gen, {"low"}, RATE, RATE))
        high = _dominant_hz(music_audio(gen, {"high"}, RATE, RATE))
        assert 100 <= low <= 220 and 860 <= high <= 1700, (number, low, high)
