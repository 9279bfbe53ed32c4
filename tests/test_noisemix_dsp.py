import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from noisemix import dsp, rng
from noisemix.errors import SpecError
from noisemix.spec import BuildSpec, parse_snr


@given(st.floats(-20, 40), st.integers(0, 2**31))
@settings(max_examples=40, deadline=None)
def test_noise_gain_gives_the_target_snr(target, seed):
    gen = np.random.default_rng(seed)
    clean, noise = gen.standard_normal(4000), gen.standard_normal(4000) * gen.uniform(0.01, 3)
    gain = dsp.noise_gain_for_snr(dsp.power(clean), dsp.power(noise), target)
    assert dsp.snr_db(clean, noise * gain) == pytest.approx(target, abs=1e-6)


def test_loop_keeps_power_and_has_no_click():
    rate = 22050
    noise = np.sin(2 * np.pi * 440 * np.arange(5000) / rate).astype(np.float32) * 0.5
    looped = dsp.loop_to_length(noise, 30000, 0, dsp.crossfade_length(noise.size, rate))
    assert looped.size == 30000
    assert dsp.power_db(dsp.power(looped)) == pytest.approx(dsp.power_db(dsp.power(noise)), abs=0.3)
    assert np.max(np.abs(np.diff(looped))) < 0.2  # no jump at the seams


def test_loop_windows_agree_with_the_whole_loop():
    noise = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    whole = dsp.loop_to_length(noise, 5000, 123, 50)
    np.testing.assert_array_equal(dsp.loop_to_length(noise, 700, 123 + 2000, 50), whole[2000:2700])


def test_pcm16_round_trip_and_saturation():
    x = np.array([-1.0, -0.5, 0.0, 0.5, 32767 / 32768, 1.5])
    pcm = dsp.to_pcm16(x)
    assert pcm.tolist() == [-32768, -16384, 0, 16384, 32767, 32767]


@pytest.mark.parametrize("text, levels, low, high", [
    ("-5:20", (), -5, 20), ("-5:20:5", (-5, 0, 5, 10, 15, 20), None, None),
    ("0,5,10", (0, 5, 10), None, None), ("7", (7,), None, None),
])
def test_parse_snr(text, levels, low, high):
    spec = parse_snr(text)
    assert spec.levels_db == levels and spec.low_db == low and spec.high_db == high


@pytest.mark.parametrize("text", ["20:-5", "a:b", "0:5:0", "", "-500:0", "1:2:3:4"])
def test_parse_snr_rejects_nonsense_with_a_message(text):
    with pytest.raises(SpecError, match="--snr"):
        parse_snr(text)


def test_grid_design_needs_levels():
    with pytest.raises(SpecError, match="grid"):
        BuildSpec(design="grid", snr=parse_snr("-5:20"))


def test_counter_rng_is_order_and_batch_independent():
    keys = rng.stable_keys([f"k{i}" for i in range(100)])
    whole = rng.uniform(7, keys, 3)
    np.testing.assert_array_equal(rng.uniform(7, keys[::-1], 3)[::-1], whole)
    np.testing.assert_array_equal(rng.uniform(7, keys[40:50], 3), whole[40:50])
    assert not np.array_equal(rng.uniform(8, keys, 3), whole)
    assert not np.array_equal(rng.uniform(7, keys, 4), whole)


def test_noisemix_imports_without_torch():
    import subprocess
    import sys

    code = "import sys, noisemix, noisemix.cli, noisemix.build, noisemix.render; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
