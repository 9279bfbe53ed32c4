import json

import numpy as np
import pytest
from typer.testing import CliRunner

from dat.cli import app
from dat.evaluate import read_metrics
from noisemix import snr_groups


def _write_metrics(run, name, metrics):
    (run / name).mkdir(parents=True)
    (run / name / "metrics.json").write_text(json.dumps(metrics, sort_keys=True))


def test_read_metrics_orders_snr_levels_numerically(tmp_path):
    levels = {f"{v:.1f}": {"roc_auc": 0.5, "pr_auc": None} for v in (-5, 0, 5, 10, 15, 20)}
    _write_metrics(tmp_path, "eval", {"run": str(tmp_path), "method": "dat", "seed": 0, "by_snr": levels,
                                      "by_category": {}, "by_category_snr": {"speech": levels}})
    read = read_metrics(tmp_path)
    expected = ["-5.0", "0.0", "5.0", "10.0", "15.0", "20.0"]
    assert list(read["by_snr"]) == expected and list(read["by_category_snr"]["speech"]) == expected
    assert read["by_snr"]["5.0"]["pr_auc"] != read["by_snr"]["5.0"]["pr_auc"]  # None came back as NaN


def test_grid_levels_stay_apart_and_random_snrs_fall_into_5_db_bins():
    grid, width = snr_groups(np.array([-5.0, 0.0, 4.99999, 5.0, 20.0]))
    assert width is None and list(grid) == ["-5.0", "0.0", "5.0", "5.0", "20.0"]
    random_snrs = np.random.default_rng(0).uniform(-5, 20, 200)
    binned, width = snr_groups(random_snrs)
    assert width == 5.0 and set(binned) == {"-5.0", "0.0", "5.0", "10.0", "15.0"}
    for snr, edge in zip(random_snrs, binned):
        assert float(edge) <= snr < float(edge) + 5


def _scores(roc):
    return {"roc_auc": roc, "pr_auc": roc / 2, "clips": 4}


def test_compare_averages_seeds_per_method_and_joins_evaluations(tmp_path):
    runs = []
    for method, base in (("source-only", 0.6), ("dat", 0.7)):
        for seed in (0, 1):
            run = tmp_path / f"{method}-{seed}"
            for name, shift in (("eval-demo", 0.0), ("eval-grid", 0.1)):
                roc = base + shift + 0.1 * seed
                by_snr = {"0.0": _scores(roc), "5.0": _scores(roc + 0.05)}
                _write_metrics(run, name, {
                    "run": str(run), "method": method, "seed": seed, "noisy": _scores(roc), "by_snr": by_snr,
                    "by_category": {"speech": _scores(roc)}, "by_category_snr": {"speech": by_snr},
                    "snr_bin_db": 5.0 if name == "eval-demo" else None})
            runs.append(run)
    out = tmp_path / "cmp" / "robustness.md"
    result = CliRunner().invoke(app, ["compare", *map(str, runs), "--eval", "eval-demo", "--eval", "eval-grid",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    mean_table, per_run = result.stdout.split("## Each run")
    assert mean_table.splitlines()[0] == ("| condition | source-only (mean of seeds 0, 1) | "
                                          "dat (mean of seeds 0, 1) |")
    assert "| eval-demo: noisy (all) | 65.0 / 32.5 | 75.0 / 37.5 |" in mean_table
    assert "| eval-demo: SNR 5.0..10.0 dB | 70.0 / 35.0 | 80.0 / 40.0 |" in mean_table
    assert "| eval-grid: speech @ 5.0 dB | 80.0 / 40.0 | 90.0 / 45.0 |" in mean_table
    assert "clean" not in mean_table  # no clean clips were scored
    assert "dat (seed 1)" in per_run.splitlines()[2]
    assert out.read_text().startswith("| condition |")
    for plot in ("robustness-eval-demo.png", "robustness-eval-grid.png"):
        assert (out.parent / plot).read_bytes()[:4] == b"\x89PNG"


def test_compare_names_the_missing_evaluation(tmp_path):
    _write_metrics(tmp_path / "run", "eval", {"method": "dat", "seed": 0, "by_snr": {}, "by_category_snr": {}})
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "run"), "--eval", "eval-grid"])
    assert result.exit_code != 0
    assert "eval-grid/metrics.json: not found" in result.stderr and "--name eval-grid" in result.stderr


@pytest.mark.parametrize("content, says", [("garbage", "not readable as JSON"),
                                           ('{"method": "dat"}', "not a dat evaluate result (no run, seed")])
def test_compare_refuses_a_damaged_result_in_one_line(tmp_path, content, says):
    import subprocess
    import sys

    (tmp_path / "run" / "eval").mkdir(parents=True)
    (tmp_path / "run" / "eval" / "metrics.json").write_text(content)
    result = subprocess.run([sys.executable, "-m", "dat", "compare", str(tmp_path / "run")], capture_output=True,
                            text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    assert says in result.stderr and "metrics.json" in result.stderr
