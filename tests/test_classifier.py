"""PFNClassifier: the scikit-learn contract, labels of any type, clear errors, and the same path as training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.utils.estimator_checks import check_estimator

from priorfit.estimators import DEFAULT_CLASSIFIER, PFNClassifier, PFNRegressor
from priorfit.exceptions import CheckpointError, InputDataError
from priorfit.model.categorical import masked_log_probs, relabel_by_context
from priorfit.models import shipped_models

from conftest import tiny_label_prior


def _data(n=30, seed=0, classes=(0, 1, 2)):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-3, 5, (n, 2))
    score = np.sin(X[:, 0]) + 0.3 * X[:, 1]
    y = np.asarray(classes)[np.digitize(score, np.quantile(score, np.linspace(0, 1, len(classes) + 1)[1:-1]))]
    return X, y


def test_probabilities_are_over_the_training_classes(tiny_classifier_checkpoint):
    X, y = _data()
    clf = PFNClassifier(model=str(tiny_classifier_checkpoint)).fit(X, y)
    proba = clf.predict_proba(X[:7])
    assert proba.shape == (7, 3) and np.all(proba > 0)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])
    np.testing.assert_array_equal(clf.predict(X[:7]), clf.classes_[proba.argmax(1)])
    np.testing.assert_allclose(clf.predict_log_proba(X[:7]), np.log(proba))


def test_string_integer_and_boolean_labels_are_the_same_classes(tiny_classifier_checkpoint):
    X, y = _data(classes=(0, 1))
    model = str(tiny_classifier_checkpoint)
    reference = PFNClassifier(model=model).fit(X, y).predict_proba(X)
    for labels in (np.where(y == 1, "yes", "no"), y.astype(bool), y * 10 - 3, y.astype(float)):
        clf = PFNClassifier(model=model).fit(X, labels)
        np.testing.assert_allclose(clf.predict_proba(X), reference, atol=1e-6)
        assert set(clf.predict(X)) <= set(labels)


def test_a_class_seen_once_gets_a_probability(tiny_classifier_checkpoint):
    X, y = _data(classes=("a", "b"))
    y = y.astype(object)
    y[3] = "rare"
    clf = PFNClassifier(model=str(tiny_classifier_checkpoint)).fit(X, y)
    assert list(clf.classes_) == ["a", "b", "rare"]
    proba = clf.predict_proba(X)
    column = list(clf.classes_).index("rare")
    assert np.all(proba[:, column] > 0)
    assert proba[3, column] > np.median(proba[:, column])  # highest near where it was seen


def test_the_estimator_predicts_what_training_scored(tiny_classifier_checkpoint):
    """Train what you serve: on a prior dataset in other units, with its classes under other names, the
    estimator's probabilities are the network's masked softmax on the context numbered as training numbers it
    (sorted), and its log loss beats the context's class frequencies."""
    from priorfit.models import load_model

    checkpoint = load_model(str(tiny_classifier_checkpoint))
    batch = tiny_label_prior().sample(40, 56, torch.Generator().manual_seed(3), n_classes=3, n_context=24)
    labels, k, _ = relabel_by_context(batch.y, 24)
    with torch.no_grad():
        logits = checkpoint.model(batch.x[:, :24].float(), labels[:, :24], batch.x[:, 24:].float())
    network = masked_log_probs(logits, k).exp()
    names = np.array(["ant", "bee", "cat"])
    losses, baselines = [], []
    for i in range(40):
        if k[i] < 2:  # a context of one class: nothing for a classifier to fit
            continue
        X = batch.x[i].numpy() * np.array([1e3, 0.01]) + np.array([-50.0, 7.0])
        y = names[batch.y[i].long().numpy()]
        clf = PFNClassifier(model=str(tiny_classifier_checkpoint)).fit(X[:24], y[:24])
        proba = clf.predict_proba(X[24:])
        np.testing.assert_allclose(proba, network[i, :, :int(k[i])].numpy(), atol=2e-5)
        known = np.isin(y[24:], clf.classes_)
        picked = proba[known, np.searchsorted(clf.classes_, y[24:][known])]
        losses.append(-np.log(picked).mean())
        counts = np.array([(y[:24] == c).sum() for c in clf.classes_]) + 0.5
        baselines.append(-np.log((counts / counts.sum())[np.searchsorted(clf.classes_, y[24:][known])]).mean())
    assert np.mean(losses) < np.mean(baselines) - 0.1, (np.mean(losses), np.mean(baselines))


def test_no_ensemble_size_means_the_models_own_default(tiny_classifier_checkpoint, tmp_path):
    """ensemble_size=None takes the size stated in the model's metadata (what its shipped report was measured at),
    1 where it states none; a given size overrides it."""
    from priorfit.checkpoint import save_checkpoint
    from priorfit.models import load_model

    X, y = _data()
    source = load_model(str(tiny_classifier_checkpoint))
    assert "default_ensemble_size" not in source.metadata
    assert PFNClassifier(model=str(tiny_classifier_checkpoint)).fit(X, y).ensemble_size_ == 1
    meta = {k: v for k, v in source.metadata.items() if k not in ("format", "model_config", "prior")}
    stated = save_checkpoint(tmp_path / "three.safetensors", source.model, source.bar_distribution, source.prior,
                             meta | {"default_ensemble_size": 3})
    default = PFNClassifier(model=str(stated), random_state=1).fit(X, y)
    assert default.ensemble_size_ == 3 and len(default.members_) == 3
    np.testing.assert_allclose(default.predict_proba(X), PFNClassifier(model=str(stated), ensemble_size=3,
                                                                       random_state=1).fit(X, y).predict_proba(X))
    one = PFNClassifier(model=str(stated), ensemble_size=1).fit(X, y)
    assert one.ensemble_size_ == 1 and len(one.members_) == 1


def test_the_ensemble_averages_class_renumberings(tiny_classifier_checkpoint):
    X, y = _data()
    model = str(tiny_classifier_checkpoint)
    plain = PFNClassifier(model=model).fit(X, y)
    ensemble = PFNClassifier(model=model, ensemble_size=6, random_state=1).fit(X, y)
    proba = ensemble.predict_proba(X)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-12)
    assert not np.allclose(proba, plain.predict_proba(X))
    np.testing.assert_allclose(PFNClassifier(model=model, ensemble_size=6, random_state=1).fit(X, y).predict_proba(X),
                               proba)
    # the members' average, each member's classes mapped back
    manual = np.zeros_like(proba)
    checkpoint = ensemble.checkpoint_
    x_ctx, x_qry = ensemble._to_model_inputs(X), ensemble._to_model_inputs(X)
    labels = torch.as_tensor(np.searchsorted(ensemble.classes_, y))[None]
    for inputs, order in ensemble.members_:
        with torch.no_grad():
            logits = checkpoint.model(inputs.inputs(x_ctx), order[labels], inputs.inputs(x_qry))[0]
        member = masked_log_probs(logits[None], 3)[0, :, :3].exp().numpy()
        manual += member[:, order.numpy()]
    np.testing.assert_allclose(proba, manual / 6, atol=1e-6)


def test_clear_errors(tiny_classifier_checkpoint, tiny_checkpoint):
    X, y = _data()
    model = str(tiny_classifier_checkpoint)
    with pytest.raises(InputDataError, match="one class"):
        PFNClassifier(model=model).fit(X, np.zeros(len(X)))
    with pytest.raises(InputDataError, match="5 classes, but the model was trained for at most 4"):
        PFNClassifier(model=model).fit(*_data(classes=(0, 1, 2, 3, 4)))
    with pytest.raises(InputDataError, match="3 features"):
        PFNClassifier(model=model).fit(np.hstack([X, X[:, :1]]), y)
    with pytest.raises(InputDataError, match="at most 32 points"):
        PFNClassifier(model=model).fit(*_data(n=40))
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        PFNClassifier(model=model).fit(Xn, y)
    with pytest.raises(ValueError, match="Unknown label type"):
        PFNClassifier(model=model).fit(X, np.linspace(0, 1, len(X)))
    with pytest.raises(CheckpointError, match="regression PFN"):
        PFNClassifier(model=str(tiny_checkpoint)).fit(X, y)
    with pytest.raises(CheckpointError, match="use PFNClassifier"):
        PFNRegressor(model=model).fit(X, y.astype(float))
    if DEFAULT_CLASSIFIER not in shipped_models():
        with pytest.raises(CheckpointError, match="no classifier ships with this version"):
            PFNClassifier().fit(X, y)
    with pytest.raises(InputDataError, match="ensemble_size"):
        PFNClassifier(model=model, ensemble_size=0).fit(X, y)


def test_scikit_learn_estimator_checks(wide_classifier_checkpoint):
    expected = {
        "check_classifiers_train": "asserts a training-set accuracy above 0.83; the model used here is untrained "
        "(accuracy is tested on the prior elsewhere)",
    }
    check_estimator(PFNClassifier(model=str(wide_classifier_checkpoint)), expected_failed_checks=expected,
                    on_fail="raise")


def test_query_chunks_and_bfloat16_give_the_same_probabilities(tiny_classifier_checkpoint):
    import warnings

    X, y = _data()
    model = str(tiny_classifier_checkpoint)
    reference = PFNClassifier(model=model).fit(X, y).predict_proba(X)
    np.testing.assert_allclose(PFNClassifier(model=model, query_batch_size=4).fit(X, y).predict_proba(X), reference,
                               atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a CPU without bfloat16 instructions emulates it
        low = PFNClassifier(model=model, precision="bfloat16").fit(X, y).predict_proba(X)
    np.testing.assert_allclose(low.sum(1), 1.0, atol=1e-9)
    assert np.max(np.abs(low - reference)) < 0.05
    with pytest.raises(InputDataError, match="precision"):
        PFNClassifier(model=model, precision="half").fit(X, y)
