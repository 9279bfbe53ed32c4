import json

from dat.evaluate import read_metrics


def test_read_metrics_orders_snr_levels_numerically(tmp_path):
    levels = {f"{v:.1f}": {"roc_auc": 0.5, "pr_auc": None} for v in (-5, 0, 5, 10, 15, 20)}
    metrics = {"by_snr": levels, "by_category_snr": {"speech": levels}}
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "metrics.json").write_text(json.dumps(metrics, sort_keys=True))
    read = read_metrics(tmp_path)
    expected = ["-5.0", "0.0", "5.0", "10.0", "15.0", "20.0"]
    assert list(read["by_snr"]) == expected and list(read["by_category_snr"]["speech"]) == expected
    assert read["by_snr"]["5.0"]["pr_auc"] != read["by_snr"]["5.0"]["pr_auc"]  # None came back as NaN
