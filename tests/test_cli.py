"""The command line: demo, fit, predict."""

import numpy as np
import pytest

from mixexp.__main__ import main


def test_demo_prints_report_and_writes_figure(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "demo.png"
    assert main(["demo", "--max-experts", "3", "--n-init", "3", "--out", str(out)]) == 0
    report = capsys.readouterr().out
    assert "Selected n_experts=3" in report
    for field in ("gate share", "noise std", "log-likelihood (total)", "BIC", "R^2",
                  "fit time"):
        assert field in report, field
    assert out.stat().st_size > 10_000
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fit_then_predict_round_trip(tmp_path, capsys):
    pytest.importorskip("pandas")
    from mixexp.datasets import load_motorcycle

    data = load_motorcycle(as_frame=True)
    table = tmp_path / "mcycle.csv"
    data.frame.to_csv(table, index=False)
    model = tmp_path / "model.pkl"
    assert main(["fit", str(table), "--target", "accel", "--n-experts", "2", "--n-init", "3",
                 "--model", str(model)]) == 0
    features = tmp_path / "features.csv"
    data.frame[["times"]].to_csv(features, index=False)
    predictions = tmp_path / "pred.csv"
    assert main(["predict", str(model), str(features), "--out", str(predictions)]) == 0
    mean, std = np.loadtxt(predictions, delimiter=",", skiprows=1, unpack=True)
    assert mean.shape == (133,) and np.all(std > 0)


def test_fit_names_missing_target_column(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("a,b\n1,2\n3,4\n")
    with pytest.raises(SystemExit, match="column 'c' not in"):
        main(["fit", str(table), "--target", "c"])
