"""The command line: demo, fit, predict, and its user errors."""

import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mixexp import MixtureOfExpertsRegressor
from mixexp.__main__ import main
from mixexp.datasets import load_motorcycle

pd = pytest.importorskip("pandas")


def run(capsys, *argv):
    status = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_user_error(capsys, argv, match):
    """Exit status 2 and one line on stderr that matches, as argparse does; no traceback."""
    status, out, err = run(capsys, *argv)
    assert status == 2, (out, err)
    assert len(err.splitlines()) == 1, err
    assert re.search(match, err), err
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "mcycle.csv"
    load_motorcycle(as_frame=True).frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def model(table):
    path = table.parent / "model.pkl"
    assert main(["fit", str(table), "--target", "accel", "--n-experts", "2", "--n-init", "2",
                 "--model", str(path)]) == 0
    return path


@pytest.fixture
def no_fitting(monkeypatch):
    """Fail the test if anything is fitted: output paths are checked first."""
    def refuse(*args, **kwargs):
        raise AssertionError("fitted before the output path was checked")

    monkeypatch.setattr(MixtureOfExpertsRegressor, "fit", refuse)


def test_demo_prints_report_and_writes_figure(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "demo.png"
    assert main(["demo", "--max-experts", "3", "--n-init", "3", "--out", str(out)]) == 0
    report = capsys.readouterr().out
    assert "Selected n_experts=3" in report
    for field in ("gate shares", "std_err", "p_value", "sigma", "log-likelihood (total)",
                  "BIC", "icl", "R^2", "selection time"):
        assert field in report, field
    # the coefficient table: gate rows for experts 1..K-1, three rows per expert
    assert len(re.findall(r"\btimes\b", report)) >= 2 + 3
    assert out.stat().st_size > 10_000
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fit_then_predict_round_trip(tmp_path, table, model, capsys):
    features = tmp_path / "features.csv"
    pd.read_csv(table)[["times"]].to_csv(features, index=False)
    predictions = tmp_path / "pred.csv"
    assert main(["predict", str(model), str(features), "--out", str(predictions)]) == 0
    mean, std = np.loadtxt(predictions, delimiter=",", skiprows=1, unpack=True)
    assert mean.shape == (133,) and np.all(std > 0)


def test_predict_leaves_out_the_target_and_other_columns(tmp_path, table, model, capsys):
    # the training file itself (target included), with columns reordered and an id added
    frame = pd.read_csv(table)
    features = tmp_path / "features.csv"
    frame[["times"]].to_csv(features, index=False)
    shuffled = tmp_path / "shuffled.csv"
    frame.assign(id=[f"row{i}" for i in range(len(frame))])[["accel", "id", "times"]].to_csv(
        shuffled, index=False)
    outputs = [run(capsys, "predict", model, path) for path in (features, table, shuffled)]
    assert [status for status, _, _ in outputs] == [0, 0, 0]
    assert outputs[0][1] == outputs[1][1] == outputs[2][1]
    assert outputs[0][1].splitlines()[0] == "mean,std"
    assert len(outputs[0][1].splitlines()) == 134


def test_predict_with_a_model_fitted_on_an_array_takes_target(tmp_path, table, capsys):
    X, y = load_motorcycle(return_X_y=True)
    path = tmp_path / "array-model.pkl"
    with open(path, "wb") as f:
        pickle.dump(MixtureOfExpertsRegressor(n_experts=1).fit(X, y), f)
    assert_user_error(capsys, ["predict", path, table], r"2 feature column\(s\) but the model "
                                                        r"was fitted on 1 \(use --target")
    status, out, _ = run(capsys, "predict", path, table, "--target", "accel")
    assert status == 0 and len(out.splitlines()) == 134


# ---- user errors: one line on stderr, exit status 2 -------------------------
@pytest.mark.parametrize("argv, match", [
    (["demo", "--max-experts", "0"], r"demo: error: argument --max-experts: expected a "
                                     r"positive integer, got 0"),
    (["demo", "--n-init", "-3"], r"argument --n-init: expected a positive integer"),
    (["demo", "--random-state", "-1"], r"argument --random-state: expected a seed"),
    (["demo", "--max-experts", "three"], r"expected a positive integer, got 'three'"),
    (["fit", "x.csv", "--target", "y", "--n-experts", "0"], r"argument --n-experts"),
    (["fit", "x.csv"], r"the following arguments are required: --target"),
    (["predict"], r"the following arguments are required"),
    (["frobnicate"], r"invalid choice: 'frobnicate'"),
])
def test_bad_options_are_one_line_and_status_2(capsys, argv, match):
    assert_user_error(capsys, argv, match)


@pytest.mark.parametrize("content, match", [
    ("", r"is empty: expected a CSV table with a header line"),
    ("times,accel\n", r"has a header but no rows"),
    ("times,accel\n1,2\n3,4,5\n", r"is not a well-formed CSV table: .*Expected 2 fields"),
    ("times,accel\n1,2,3\n4,5,6\n",
     r"is not a well-formed CSV table: a row has more fields than the header"),
    ("times,accel\n1,2\n3\n", r"column 'accel' of .* has a missing value \(data row 2\)"),
    (b"\xff\xfe\x00\x01\x80\x81,\n", r"is not a well-formed CSV table"),
    ("times,accel\n1,2\nfast,4\n", r"column 'times' of .* is not numeric \(it holds 'fast'\)"),
    ("times,accel\n1,2\n3,\n", r"column 'accel' of .* has a missing value \(data row 2\)"),
    ("accel\n1\n2\n", r"has no feature columns besides the target 'accel'"),
    ("times,speed\n1,2\n3,4\n", r"column 'accel' not in .* \(columns: \['times', 'speed'\]\)"),
])
def test_fit_on_a_bad_table_is_one_line_and_status_2(tmp_path, capsys, no_fitting, content,
                                                     match):
    path = tmp_path / "bad.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    assert_user_error(capsys, ["fit", path, "--target", "accel", "--model",
                               tmp_path / "m.pkl"], match)


def test_data_the_estimator_refuses_is_one_line_and_status_2(tmp_path, capsys):
    path = tmp_path / "huge.csv"
    path.write_text("times,accel\n1,2\n1e200,3\n2,5\n")
    assert_user_error(capsys, ["fit", path, "--target", "accel", "--model",
                               tmp_path / "m.pkl"], r"fit: error: X has values as large as")


@pytest.mark.parametrize("command", ["fit", "predict"])
def test_missing_input_files_are_one_line_and_status_2(tmp_path, capsys, model, command):
    missing = tmp_path / "nowhere.csv"
    argv = (["fit", missing, "--target", "accel", "--model", tmp_path / "m.pkl"]
            if command == "fit" else ["predict", model, missing])
    assert_user_error(capsys, argv, rf"{command}: error: no such file: .*nowhere\.csv")


def test_a_directory_as_input_is_one_line_and_status_2(tmp_path, capsys, model):
    assert_user_error(capsys, ["predict", model, tmp_path], r"cannot read .*: Is a directory")


@pytest.mark.parametrize("content, match", [
    (None, r"no such model file"),
    (b"not a pickle", r"is not a model saved by 'fit'"),
    (pickle.dumps({"a": 1}), r"holds a dict, not a MixtureOfExpertsRegressor"),
])
def test_bad_model_files_are_one_line_and_status_2(tmp_path, capsys, table, content, match):
    path = tmp_path / "model.pkl"
    if content is not None:
        path.write_bytes(content)
    assert_user_error(capsys, ["predict", path, table], match)


def test_predict_names_the_missing_feature_columns(tmp_path, capsys, model):
    path = tmp_path / "other.csv"
    path.write_text("speed,accel\n1,2\n")
    assert_user_error(capsys, ["predict", model, path],
                      r"lacks the column\(s\) \['times'\] the model was fitted on")


def unwritable_paths(tmp_path):
    (tmp_path / "a-file").write_text("")
    return [tmp_path / "no-such-dir" / "out",   # the directory does not exist
            tmp_path,                          # a directory, not a file
            tmp_path / "a-file" / "out"]       # "directory" that is a file


def test_unwritable_model_path_is_refused_before_fitting(tmp_path, capsys, table, no_fitting):
    for path in unwritable_paths(tmp_path):
        assert_user_error(capsys, ["fit", table, "--target", "accel", "--model", path],
                          r"fit: error: (cannot write --model|--model .* is a directory)")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root may write anywhere")
def test_read_only_directory_is_refused_before_fitting(tmp_path, capsys, table, no_fitting):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert_user_error(capsys, ["fit", table, "--target", "accel", "--model",
                                   locked / "m.pkl"], r"cannot write --model .*permission denied")
    finally:
        locked.chmod(0o700)


def test_unwritable_outputs_of_demo_and_predict_are_refused_first(tmp_path, capsys, table,
                                                                  model, monkeypatch):
    import mixexp.__main__ as cli

    def refuse(*args, **kwargs):
        raise AssertionError("worked before the output path was checked")

    monkeypatch.setattr(cli, "load_motorcycle", refuse, raising=False)
    monkeypatch.setattr("mixexp.datasets.load_motorcycle", refuse)
    monkeypatch.setattr(cli, "_load_model", refuse)
    for path in unwritable_paths(tmp_path):
        assert_user_error(capsys, ["demo", "--out", path], r"demo: error: .*--out")
        assert_user_error(capsys, ["predict", model, table, "--out", path],
                          r"predict: error: .*--out")


def test_help_documents_how_predict_picks_its_columns(capsys):
    assert main(["predict", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "any other column, such as the target, is ignored" in text


def test_the_installed_command_exits_2_without_a_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mixexp", "fit", str(tmp_path / "missing.csv"), "--target", "y"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"python -m mixexp fit: error: no such file: {tmp_path / 'missing.csv'}"
    ]


def test_fit_poisson_experts_with_a_concomitant_gate(tmp_path, capsys):
    # the patent data (tests/data): counts of patents, experts on lgRD, the gate on RDS
    data = Path(__file__).parent / "data" / "patent.csv"
    path = tmp_path / "poisson.pkl"
    status, out, _ = run(capsys, "fit", data, "--target", "Patents", "--n-experts", "2",
                         "--expert", "poisson", "--gate-features", "RDS",
                         "--expert-features", "lgRD", "--model", path)
    assert status == 0, out
    with open(path, "rb") as f:
        est = pickle.load(f)
    assert est.expert == "poisson" and est.gate_coef_.shape == (2, 1)
    assert est.expert_coef_.shape == (2, 1)
    status, out, _ = run(capsys, "predict", path, data)
    mean = np.loadtxt(out.splitlines()[1:], delimiter=",")[:, 0]
    assert status == 0 and np.all(mean > 0)
    # a column that is not a feature is reported as a user error
    assert_user_error(capsys, ["fit", data, "--target", "Patents", "--gate-features",
                               "Patents", "--model", path],
                      r"fit: error: gate_features names columns that X does not have")


# (ECM's step in nu is slow where the likelihood is flat in it: see the estimator's docs)
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_fit_student_t_experts(table, tmp_path, capsys):
    path = tmp_path / "student_t.pkl"
    status, out, _ = run(capsys, "fit", table, "--target", "accel", "--n-experts", "2",
                         "--expert", "student_t", "--model", path)
    assert status == 0, out
    with open(path, "rb") as f:
        est = pickle.load(f)
    assert est.expert == "student_t" and est.expert_dof_.shape == (2,)
    status, out, _ = run(capsys, "predict", path, table)
    assert status == 0
    assert np.all(np.isfinite(np.loadtxt(out.splitlines()[1:], delimiter=",")[:, 0]))
    # the help names the family
    assert main(["fit", "--help"]) == 0
    assert "Student-t" in capsys.readouterr().out
