import csv
import dataclasses
import json

import numpy as np
import pytest

from priorfit.cli import main
from priorfit.config import to_dict
from priorfit.checkpoint import load_checkpoint

from conftest import TINY_MODEL, TINY_TRAIN, tiny_prior


@pytest.mark.parametrize("command", ["train", "predict", "demo", "evaluate"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage: priorfit " + command in capsys.readouterr().out


def test_train_from_json(tmp_path, capsys):
    job = {"type": "TrainJob", "prior": to_dict(tiny_prior()), "model": to_dict(TINY_MODEL),
           "training": to_dict(dataclasses.replace(TINY_TRAIN, steps=4, eval_every=4, checkpoint_every=4))}
    (tmp_path / "job.json").write_text(json.dumps(job))
    assert main(["train", str(tmp_path / "job.json"), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert "step 4" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "run" / "model.safetensors").metadata["step"] == 4


def test_train_rejects_unknown_fields(tmp_path, capsys):
    job = {"type": "TrainJob", "prior": to_dict(tiny_prior()), "model": {"type": "ModelConfig", "layers": 3}}
    (tmp_path / "job.json").write_text(json.dumps(job))
    assert main(["train", str(tmp_path / "job.json"), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "unknown field(s) ['layers']" in err and not (tmp_path / "run").exists()


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def test_predict_csv(tmp_path, tiny_checkpoint):
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (12, 2))
    y = np.sin(5 * X[:, 0]) + X[:, 1]
    _write_csv(tmp_path / "train.csv", ["a", "b", "target"], np.column_stack([X, y]))
    _write_csv(tmp_path / "query.csv", ["b", "a"], X[:3, ::-1])
    out = tmp_path / "pred.csv"
    code = main(["predict", "--train", str(tmp_path / "train.csv"), "--query", str(tmp_path / "query.csv"),
                 "--target", "target", "--model", str(tiny_checkpoint), "--quantiles", "0.1,0.9", "--out", str(out)])
    assert code == 0
    rows = list(csv.DictReader(open(out)))
    assert list(rows[0]) == ["a", "b", "median", "mean", "std", "q0.1", "q0.9"] and len(rows) == 3
    from priorfit.estimators import PFNRegressor

    expected = PFNRegressor(model=str(tiny_checkpoint)).fit(X, y).predict(X[:3])
    np.testing.assert_allclose([float(r["median"]) for r in rows], expected, rtol=1e-5)
    assert all(float(r["q0.1"]) < float(r["median"]) < float(r["q0.9"]) for r in rows)
    code = main(["predict", "--train", str(tmp_path / "train.csv"), "--query", str(tmp_path / "query.csv"),
                 "--target", "target", "--model", str(tiny_checkpoint), "--ensemble", "3", "--out", str(out)])
    ensemble = PFNRegressor(model=str(tiny_checkpoint), ensemble_size=3).fit(X, y).predict(X[:3])
    assert code == 0 and not np.allclose(ensemble, expected, rtol=1e-3)
    np.testing.assert_allclose([float(r["median"]) for r in csv.DictReader(open(out))], ensemble, rtol=1e-5)


def test_predict_errors(tmp_path, tiny_checkpoint, capsys):
    _write_csv(tmp_path / "train.csv", ["a", "y"], [[0.1, 1.0], [0.5, 2.0], [0.9, 0.5]])
    _write_csv(tmp_path / "query.csv", ["c"], [[0.3]])
    args = ["predict", "--train", str(tmp_path / "train.csv"), "--model", str(tiny_checkpoint)]
    assert main(args + ["--query", str(tmp_path / "query.csv")]) == 2
    assert "lacks the feature column(s) ['a']" in capsys.readouterr().err
    assert main(args + ["--query", str(tmp_path / "query.csv"), "--target", "zz"]) == 2
    assert "--target 'zz'" in capsys.readouterr().err
    assert main(args + ["--query", str(tmp_path / "missing.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err
    # missing values and text: the file, line and column named, exit 2, no traceback
    (tmp_path / "nan.csv").write_text("a,y\n0.1,1.0\n0.5,nan\n0.9,0.5\n")
    (tmp_path / "text.csv").write_text("a,y\n0.1,1.0\n0.5,abc\n")
    (tmp_path / "short.csv").write_text("a,y\n0.1,1.0\n0.5\n")
    good_query = tmp_path / "good_query.csv"
    good_query.write_text("a\n0.3\n")
    for name, message in (("nan.csv", "line 3, column 'y': 'nan' is not a finite number"),
                          ("text.csv", "line 3, column 'y': 'abc' is not a number"),
                          ("short.csv", "line 3: 1 values")):
        code = main(["predict", "--train", str(tmp_path / name), "--query", str(good_query),
                     "--model", str(tiny_checkpoint)])
        err = capsys.readouterr().err
        assert code == 2 and message in err and "Traceback" not in err, err
        if name == "text.csv":  # text where a regression model needs numbers: perhaps class labels
            assert "pass --model tabular" in err


def test_predict_csv_with_a_classifier(tmp_path, tiny_classifier_checkpoint):
    """Text labels in, the most probable class and a probability column per class out: PFNClassifier's."""
    rng = np.random.default_rng(1)
    X = rng.uniform(-2, 3, (20, 2))
    y = np.where(X[:, 0] + X[:, 1] > 1, "spam", "ham")
    y[4] = "eggs"
    _write_csv(tmp_path / "train.csv", ["a", "b", "kind"], [[*map(str, x), c] for x, c in zip(X, y)])
    _write_csv(tmp_path / "query.csv", ["b", "a"], X[:5, ::-1])
    out = tmp_path / "pred.csv"
    code = main(["predict", "--train", str(tmp_path / "train.csv"), "--query", str(tmp_path / "query.csv"),
                 "--model", str(tiny_classifier_checkpoint), "--out", str(out)])
    assert code == 0
    rows = list(csv.DictReader(open(out)))
    assert list(rows[0]) == ["a", "b", "predicted", "p_eggs", "p_ham", "p_spam"] and len(rows) == 5
    from priorfit.estimators import PFNClassifier

    clf = PFNClassifier(model=str(tiny_classifier_checkpoint)).fit(X, y)
    np.testing.assert_allclose([[float(r[f"p_{c}"]) for c in clf.classes_] for r in rows], clf.predict_proba(X[:5]),
                               rtol=1e-5)
    assert [r["predicted"] for r in rows] == list(clf.predict(X[:5]))


def test_predict_csv_with_text_labels_and_no_model_classifies(tmp_path, capsys):
    """A target of text alone, with no --model, is a classification task: the default classifier answers, and says
    so on standard error; a numeric target, or one of numbers and some text, still goes to the default regressor."""
    from priorfit.estimators import DEFAULT_CLASSIFIER, PFNClassifier

    rng = np.random.default_rng(2)
    X = rng.uniform(0, 10, (30, 2))
    y = np.where(X[:, 0] > 5, "high", "low")
    _write_csv(tmp_path / "train.csv", ["a", "b", "level"], [[*map(str, x), c] for x, c in zip(X, y)])
    _write_csv(tmp_path / "query.csv", ["a", "b"], X[:4])
    out = tmp_path / "pred.csv"
    assert main(["predict", "--train", str(tmp_path / "train.csv"), "--query", str(tmp_path / "query.csv"),
                 "--out", str(out)]) == 0
    assert f"default classifier ({DEFAULT_CLASSIFIER})" in capsys.readouterr().err
    rows = list(csv.DictReader(open(out)))
    assert list(rows[0]) == ["a", "b", "predicted", "p_high", "p_low"]
    expected = PFNClassifier().fit(X, y).predict_proba(X[:4])
    np.testing.assert_allclose([[float(r["p_high"]), float(r["p_low"])] for r in rows], expected, rtol=1e-5)
    _write_csv(tmp_path / "numeric.csv", ["a", "b", "y"], [[*map(str, x), str(x[0])] for x in X])
    assert main(["predict", "--train", str(tmp_path / "numeric.csv"), "--query", str(tmp_path / "query.csv"),
                 "--out", str(out)]) == 0
    assert "median" in open(out).readline() and "classifier" not in capsys.readouterr().err
    # numbers and one text value: still a regression target, and the text's line is named
    _write_csv(tmp_path / "mixed.csv", ["a", "b", "y"], [[*map(str, x), "NA" if i == 3 else str(x[0])]
                                                        for i, x in enumerate(X)])
    assert main(["predict", "--train", str(tmp_path / "mixed.csv"), "--query", str(tmp_path / "query.csv")]) == 2
    assert "line 5, column 'y': 'NA' is not a number" in capsys.readouterr().err


def test_demo_writes_a_plot(tmp_path, tiny_checkpoint, capsys):
    out = tmp_path / "demo.png"
    assert main(["demo", "--model", str(tiny_checkpoint), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "PFN 90% interval" in text and "exact 90% interval" in text
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bo_writes_history_and_plot_and_survives_a_failing_objective(tmp_path, tiny_checkpoint) -> None:
    objective = tmp_path / "objective.py"
    objective.write_text("def f(x):\n    if x[0] > 0.8:\n        raise RuntimeError('diverged')\n"
                         "    return float((x[0] - 0.3) ** 2 + (x[1] - 0.6) ** 2)\n")
    out = tmp_path / "bo"
    code = main(["bo", f"{objective}:f", "--bounds=0:1,0:1", "--budget", "6", "--out", str(out), "--quiet",
                 "--model", str(tiny_checkpoint)])
    assert code == 0
    rows = (out / "history.csv").read_text().splitlines()
    assert rows[0].startswith("trial,x0,x1,value,best_so_far,error") and len(rows) == 7
    assert (out / "best_so_far.png").stat().st_size > 1000


@pytest.mark.parametrize("argv, message", [
    (["bo", "no_such_module:f", "--bounds=0:1", "--budget", "2"], "cannot import 'no_such_module'"),
    (["bo", "math:no_function", "--bounds=0:1", "--budget", "2"], "has no function 'no_function'"),
    (["bo", "math:sqrt", "--budget", "2"], "--bounds or by --param"),
    (["bo", "math:sqrt", "--bounds=1:0", "--budget", "2"], "high must exceed low"),
    (["bo", "math:sqrt", "--param", "a:0:1:cube", "--budget", "2"], "unknown flag"),
    (["bo", "math", "--bounds=0:1", "--budget", "2"], "MODULE:FUNCTION"),
])
def test_bo_bad_input_is_a_clear_error(argv, message, capsys) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err
