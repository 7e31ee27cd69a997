"""The principal-axes view: a rotation of the standardised context, invariant to units, shared by training and the
classifier's ensemble, and served only by a model trained on it."""

import dataclasses
import pickle

import numpy as np
import pytest
import torch

from priorfit import PFNClassifier
from priorfit.checkpoint import load_checkpoint, save_checkpoint
from priorfit.exceptions import ConfigError, InputDataError
from priorfit.principal_axes import PrincipalAxes, rotate_some, trained_on_principal_axes
from priorfit.training import TrainConfig, train
from priorfit.model.transformer import ModelConfig

from conftest import tiny_label_prior, tiny_prior


def _data(batch=3, n=40, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    size = torch.randn(batch, n, 1, generator=g, dtype=torch.float64)
    return size + 0.3 * torch.randn(batch, n, d, generator=g, dtype=torch.float64)  # strongly correlated features


def test_view_is_a_rotation_of_the_standardised_context():
    x = _data()
    axes = PrincipalAxes.fit(x)
    eye = torch.eye(4, dtype=torch.float64).expand(3, 4, 4)
    torch.testing.assert_close(axes.axes.transpose(-1, -2) @ axes.axes, eye)  # orthonormal: full rank here
    z = (x - x.mean(-2, keepdim=True)) / x.std(-2, unbiased=False, keepdim=True)
    view = axes(x)
    torch.testing.assert_close(torch.cdist(view, view), torch.cdist(z, z))  # distances kept
    variances = view.var(-2, unbiased=False)
    assert (variances[..., :-1] >= variances[..., 1:] - 1e-12).all()  # largest variance first
    torch.testing.assert_close(variances.sum(-1), torch.full((3,), 4.0, dtype=torch.float64))  # trace of a correlation


@pytest.mark.parametrize("n, d", [(40, 4), (20, 2), (2, 4), (3, 2)])
def test_view_is_invariant_to_each_features_units(n, d):
    """At d = 2 both axes' loadings always tie in size, and with two points the first axis's do: the sign rule
    must not leave them to rounding."""
    g = torch.Generator().manual_seed(d)
    for seed in range(50):
        x, queries = _data(batch=1, n=n, d=d, seed=seed), _data(batch=1, n=5, d=d, seed=seed + 100)
        a = 10 ** (4 * torch.rand(d, generator=g, dtype=torch.float64) - 2)
        b = 1e3 * torch.randn(d, generator=g, dtype=torch.float64)
        torch.testing.assert_close(PrincipalAxes.fit(x * a + b)(queries * a + b), PrincipalAxes.fit(x)(queries))
        # float32 inputs (what the network is given) find the same axes as float64 ones
        torch.testing.assert_close(PrincipalAxes.fit(x.float())(queries.float()).double(),
                                   PrincipalAxes.fit(x)(queries), atol=1e-4, rtol=1e-4)


def test_view_survives_huge_units_and_offsets():
    x, queries = _data(), _data(seed=1)
    plain = PrincipalAxes.fit(x)(queries)
    torch.testing.assert_close(PrincipalAxes.fit(x * 1e160)(queries * 1e160), plain)
    torch.testing.assert_close(PrincipalAxes.fit(x * 1e-3 + 1e7)(queries * 1e-3 + 1e7), plain, atol=1e-5, rtol=1e-5)  # 1e7 keeps 9 digits of 1e-3


def test_contrast_of_correlated_features_becomes_a_feature():
    """Two measurements of one size with a small difference between them: the second axis is their contrast."""
    g = torch.Generator().manual_seed(3)
    size = torch.randn(1, 200, 1, generator=g, dtype=torch.float64)
    contrast = 0.1 * torch.randn(1, 200, 1, generator=g, dtype=torch.float64)
    x = torch.cat([size + contrast, size - contrast], dim=-1)
    view = PrincipalAxes.fit(x)(x)
    r = np.corrcoef(view[0, :, 1].numpy(), contrast[0, :, 0].numpy())[0, 1]
    assert abs(r) > 0.99


def test_null_directions_map_to_zero_and_the_view_is_deterministic():
    x = _data(batch=2, n=3, d=6)  # 3 points span at most 2 directions about their mean
    x[1, :, 5] = 4.0  # and a constant feature
    view = PrincipalAxes.fit(x)(x)
    assert torch.isfinite(view).all()
    assert (view[..., 2:] == 0).all()
    torch.testing.assert_close(PrincipalAxes.fit(x.clone())(x), view, rtol=0, atol=0)
    loadings = PrincipalAxes.fit(_data()).axes
    top = loadings.gather(-2, loadings.abs().argmax(-2, keepdim=True))
    assert (top > 0).all()  # each axis signed so its largest loading is positive


def test_view_rejects_queries_of_another_shape():
    axes = PrincipalAxes.fit(_data())
    with pytest.raises(ValueError, match="fitted to 3 contexts of 4 features"):
        axes(_data(d=3))


def test_rotate_some_draws_the_view_per_dataset_from_the_context_alone():
    x = _data(batch=400, n=12, d=3)
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    assert rotate_some(x, 8, 0.0, g) is x and torch.equal(g.get_state(), state)  # rate 0 draws nothing
    shown = rotate_some(x, 8, 0.5, torch.Generator().manual_seed(5))
    rotated = ~torch.isclose(shown, x).all(-1).all(-1)
    assert 150 < int(rotated.sum()) < 250  # Binomial(400, 1/2): 5 sd either side
    for i in torch.nonzero(rotated)[:5, 0]:
        torch.testing.assert_close(shown[i], PrincipalAxes.fit(x[i:i + 1, :8])(x[i:i + 1])[0])
    moved = x.clone()
    moved[:, 8:] += 5.0  # queries do not move the axes
    again = rotate_some(moved, 8, 0.5, torch.Generator().manual_seed(5))
    torch.testing.assert_close(again[:, :8], shown[:, :8])
    torch.testing.assert_close(rotate_some(x, 8, 1.0, torch.Generator()), PrincipalAxes.fit(x[:, :8])(x))


def test_train_config_checks_the_rate():
    with pytest.raises(ValueError, match="principal_axes_rate must lie in"):
        TrainConfig(principal_axes_rate=1.5)


def test_a_regression_pfn_cannot_train_on_the_view(tmp_path):
    config = TrainConfig(steps=1, batch_size=2, n_points=8, eval_every=1, eval_datasets=2, eval_context=(2,),
                         principal_axes_rate=0.5)
    with pytest.raises(ConfigError, match="principal_axes_rate"):
        train(tiny_prior(), ModelConfig(d_model=16, n_layers=1, n_heads=2, d_ff=16, max_features=2, n_bars=20),
              config, tmp_path, resume=False, progress=False)


@pytest.fixture(scope="module")
def view_checkpoint(tmp_path_factory):
    """A classifier trained a few steps with the view, for the estimator's ensemble."""
    model = ModelConfig(d_model=16, n_layers=1, n_heads=2, d_ff=16, max_features=2, n_classes=4, invariant=True)
    config = TrainConfig(steps=4, batch_size=4, n_points=40, min_context=4, max_context=32, eval_every=4,
                         eval_datasets=2, eval_context=(8,), checkpoint_every=4, principal_axes_rate=0.5)
    return train(tiny_label_prior(), model, config, tmp_path_factory.mktemp("view"), resume=False,
                 progress=False).checkpoint


def test_classifier_serves_the_view_only_for_a_model_trained_on_it(view_checkpoint, tiny_classifier_checkpoint,
                                                                  tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 2)) @ np.array([[1.0, 0.9], [0.0, 0.4]]) * [5.0, 0.01]
    y = (X[:, 0] / 5 - X[:, 1] / 0.01 > 0).astype(int)
    assert trained_on_principal_axes(load_checkpoint(view_checkpoint))
    assert not trained_on_principal_axes(load_checkpoint(tiny_classifier_checkpoint))

    clf = PFNClassifier(model=view_checkpoint, ensemble_size=3, view_weighting="equal").fit(X, y)
    kinds = [type(t) for t, _ in clf.members_]
    assert kinds[1] is PrincipalAxes and kinds[0] is not PrincipalAxes and kinds[2] is not PrincipalAxes
    # by hand: the average of the network on the data, on the context's axes, and on the third member's transform
    from priorfit.model.categorical import masked_log_probs

    model, x_ctx, xq = clf.checkpoint_.model, clf._to_model_inputs(X), clf._to_model_inputs(X[:5])
    labels = torch.as_tensor(np.searchsorted(clf.classes_, y))[None]
    by_hand = 0
    with torch.inference_mode():
        for transform, order in ([(lambda t: t), clf.members_[0][1]], [PrincipalAxes.fit(x_ctx), clf.members_[1][1]],
                                 clf.members_[2]):
            fit = transform.inputs if hasattr(transform, "inputs") else transform
            cache = model.encode_context(fit(x_ctx), order[labels])
            probs = masked_log_probs(model.predict_logits(cache, fit(xq)).double(), 2)[0, :, :2].exp()
            by_hand = by_hand + probs[:, order].numpy() / 3
    proba = clf.predict_proba(X[:5])
    np.testing.assert_allclose(proba, by_hand, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-9)
    assert len(PFNClassifier(model=view_checkpoint, ensemble_size=1).fit(X, y).members_) == 1
    plain = PFNClassifier(model=tiny_classifier_checkpoint, ensemble_size=3).fit(X, y)
    assert not any(isinstance(t, PrincipalAxes) for t, _ in plain.members_)

    # the same weights stated as trained without the view are served without it
    ckpt = load_checkpoint(view_checkpoint)
    meta = dict(ckpt.metadata, train_config=dict(ckpt.metadata["train_config"], principal_axes_rate=0.0))
    path = tmp_path / "no_view.safetensors"
    save_checkpoint(path, ckpt.model, ckpt.bar_distribution, ckpt.prior, {k: v for k, v in meta.items()
                                                                           if k not in ("format", "model_config", "prior")})
    assert not any(isinstance(t, PrincipalAxes) for t, _ in PFNClassifier(model=path, ensemble_size=2).fit(X, y).members_)


def _two_view_config(**changes):
    base = dict(d_model=16, n_layers=1, n_heads=2, d_ff=16, max_features=3, n_classes=4, invariant=True,
                n_frequencies=2, robust_inputs=True)
    return ModelConfig(**{**base, **changes})


def test_a_model_reading_both_views_is_invariant_to_units_and_needs_invariance():
    from priorfit.model.transformer import PFNTransformer

    torch.manual_seed(0)
    model = PFNTransformer(_two_view_config(principal_axes=True)).eval()
    x, queries = _data(batch=2, n=20, d=3), _data(batch=2, n=5, d=3, seed=1)  # float64: the units keep their digits
    y = torch.randint(0, 3, (2, 20)).float()
    a = torch.tensor([40.0, 0.01, 3.0], dtype=torch.float64)
    b = torch.tensor([-2.0, 5.0, 100.0], dtype=torch.float64)
    with torch.no_grad():
        moved, plain = model(x * a + b, y, queries * a + b), model(x, y, queries)
        torch.testing.assert_close(moved, plain, atol=1e-5, rtol=1e-5)
        model.axes_encoder.linear.weight.normal_()  # the second view counts
        assert not torch.allclose(model(x, y, queries), plain, atol=1e-3)
    with pytest.raises(ValueError, match="principal_axes acts on the context's own units"):
        ModelConfig(principal_axes=True)


def test_warm_start_into_two_views_computes_what_the_source_did(tiny_classifier_checkpoint, tmp_path):
    """Training from a one-view model starts where it was: the second view's encoder starts at zero."""
    source = load_checkpoint(tiny_classifier_checkpoint)
    config = dataclasses.replace(source.model_config, principal_axes=True)
    from priorfit.training import _warm_start_weights
    from priorfit.model.transformer import PFNTransformer

    target = PFNTransformer(config)
    target.load_state_dict(_warm_start_weights(source, config, target.state_dict()))
    x, queries = _data(batch=2, n=16, d=2).float(), _data(batch=2, n=4, d=2, seed=2).float()
    y = torch.randint(0, 3, (2, 16)).float()
    with torch.no_grad():
        torch.testing.assert_close(target.eval()(x, y, queries), source.model.eval()(x, y, queries), rtol=0, atol=0)
    with pytest.raises(ConfigError, match="both show the principal axes"):
        train(tiny_label_prior(), config, dataclasses.replace(TrainConfig(steps=1), principal_axes_rate=0.5),
              tmp_path / "both", resume=False, progress=False)
    train_config = TrainConfig(steps=2, batch_size=4, n_points=40, min_context=4, max_context=32, eval_every=2,
                               eval_datasets=2, eval_context=(8,), checkpoint_every=2)
    trained = train(tiny_label_prior(), config, train_config, tmp_path, resume=False, progress=False,
                    init_from=tiny_classifier_checkpoint).checkpoint
    clf = PFNClassifier(model=trained, ensemble_size=2).fit(np.c_[np.arange(10.0), np.arange(10.0) ** 2],
                                                           np.arange(10) % 2)
    proba = clf.predict_proba([[1.0, 2.0], [7.0, 3.0]])
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-9)
    assert all(c.axes_view is not None for c in clf.contexts_)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(clf)).predict_proba([[1.0, 2.0], [7.0, 3.0]]), proba)


def test_warm_start_resizes_the_axes_encoder_exactly():
    """A two-view model narrowed or widened computes on inputs both accept what it computed (zero-padded)."""
    from priorfit.model.transformer import PFNTransformer
    from priorfit.training import _narrowed, _widened

    torch.manual_seed(1)
    source = PFNTransformer(_two_view_config(principal_axes=True, max_features=3)).eval()
    x, queries = _data(batch=2, n=12, d=2), _data(batch=2, n=3, d=2, seed=4)
    y = torch.randint(0, 3, (2, 12)).float()
    for size, resize in ((2, _narrowed), (5, _widened)):
        target = PFNTransformer(_two_view_config(principal_axes=True, max_features=size)).eval()
        target.load_state_dict(resize(source.state_dict(), source.config, size))
        with torch.no_grad():
            torch.testing.assert_close(target(x, y, queries), source(x, y, queries), atol=2e-6, rtol=1e-6)


def test_warm_start_into_two_views_needs_an_invariant_source(tiny_checkpoint):
    from priorfit.training import _warm_start_weights
    from priorfit.model.transformer import PFNTransformer

    source = load_checkpoint(tiny_checkpoint)
    config = dataclasses.replace(source.model_config, invariant=True, principal_axes=True)
    with pytest.raises(ConfigError, match="not an invariant model"):
        _warm_start_weights(source, config, PFNTransformer(config).state_dict())


def test_evidence_weighs_the_view_against_the_data_by_bayes_rule(view_checkpoint, tiny_classifier_checkpoint):
    from priorfit.model.categorical import masked_log_probs
    from priorfit.model.evidence import prequential_blocks

    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 2)) @ np.array([[1.0, 0.9], [0.0, 0.4]])
    y = np.where(X[:, 0] - 2 * X[:, 1] > 0, "a", "b")
    clf = PFNClassifier(model=view_checkpoint, ensemble_size=3, random_state=4).fit(X, y)
    equal = PFNClassifier(model=view_checkpoint, ensemble_size=3, random_state=4, view_weighting="equal").fit(X, y)
    for (t1, c1), (t2, c2) in zip(clf.members_, equal.members_):  # the same members either way
        assert type(t1) is type(t2) and torch.equal(c1, c2)
        assert isinstance(t1, PrincipalAxes) or t1 == t2

    # by hand: the labels' evidence on the data (identity member) and on the view, scored in the order the
    # estimator's generator draws after the members; the view gets its posterior probability, the data's two
    # members share the rest
    draws = np.random.RandomState(4)
    x_ctx = clf._to_model_inputs(X)
    clf._members(x_ctx, 2, draws)  # the members' draws come first
    labels = np.searchsorted(clf.classes_, y)
    blocks = prequential_blocks(labels, draws)
    order = blocks.order.numpy()
    evidence = []
    with torch.inference_mode():  # each member alone, each block by hand: sum of log p(label | its prefix)
        for transform, classes in clf.members_[:2]:
            total = 0.0
            for start, stop in zip(blocks.bounds[:-1], blocks.bounds[1:]):
                seen, scored = order[:start], order[start:stop]
                cache = clf.checkpoint_.model.encode_context(transform.inputs(x_ctx[:, seen]),
                                                             classes[torch.as_tensor(labels[seen])][None])
                logits = clf.checkpoint_.model.predict_logits(cache, transform.inputs(x_ctx[:, scored]))
                probs = torch.softmax(logits[0, :, :2].double(), -1).numpy()
                total += sum(np.log(probs[i, int(classes[labels[j]])]) for i, j in enumerate(scored))
            evidence.append(total)
    np.testing.assert_allclose(clf.log_evidence_, evidence, rtol=1e-6)  # float32 passes, batched or not
    view = 1 / (1 + np.exp(clf.log_evidence_[0] - clf.log_evidence_[1]))
    np.testing.assert_allclose(clf.member_weights_, [(1 - view) / 2, view, (1 - view) / 2], rtol=1e-12)
    assert clf.member_weights_.sum() == pytest.approx(1.0, abs=1e-12)

    # predict_proba is the members' probabilities under those weights
    xq = clf._to_model_inputs(X[:6])
    members = []
    with torch.inference_mode():
        for (transform, order), cache in zip(clf.members_, clf.contexts_):
            logits = clf.checkpoint_.model.predict_logits(cache, transform.inputs(xq)).double()
            members.append(masked_log_probs(logits, 2)[0, :, :2].exp()[:, order].numpy())
    weighted = sum(w * p for w, p in zip(clf.member_weights_, members))
    np.testing.assert_allclose(clf.predict_proba(X[:6]), weighted, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(equal.predict_proba(X[:6]), sum(members) / 3, rtol=1e-9, atol=1e-12)
    assert equal.log_evidence_ is None

    # a model without the view, or one member: equal weights, no evidence computed
    plain = PFNClassifier(model=tiny_classifier_checkpoint, ensemble_size=3).fit(X, y)
    assert plain.log_evidence_ is None and np.allclose(plain.member_weights_, 1 / 3)
    assert PFNClassifier(model=view_checkpoint, ensemble_size=1).fit(X, y).log_evidence_ is None


def test_view_weighting_is_checked(view_checkpoint):
    X, y = np.arange(8.0).reshape(4, 2), np.array([0, 1, 0, 1])
    with pytest.raises(InputDataError, match="view_weighting"):
        PFNClassifier(model=view_checkpoint, view_weighting="bayes").fit(X, y)


def test_evidence_weighting_edge_cases(view_checkpoint):
    import pickle

    from sklearn.base import clone

    rng = np.random.default_rng(2)
    X = rng.normal(size=(30, 2))
    y = (X[:, 0] > 0).astype(int)
    first = PFNClassifier(model=view_checkpoint, ensemble_size=2, random_state=7).fit(X, y)
    again = PFNClassifier(model=view_checkpoint, ensemble_size=2, random_state=7).fit(X, y)
    np.testing.assert_array_equal(first.member_weights_, again.member_weights_)  # a seed fixes the scoring order
    np.testing.assert_array_equal(first.predict_proba(X), pickle.loads(pickle.dumps(first)).predict_proba(X))
    assert clone(first).get_params()["view_weighting"] == "evidence"
    # one point per class: nothing to score, the prior's 1/2 each
    two = PFNClassifier(model=view_checkpoint, ensemble_size=2).fit(X[:2], [0, 1])
    np.testing.assert_array_equal(two.log_evidence_, [0.0, 0.0])
    np.testing.assert_array_equal(two.member_weights_, [0.5, 0.5])
    assert np.isfinite(first.log_evidence_).all() and (first.log_evidence_ < 0).all()


def test_a_view_models_report_must_be_measured_as_it_is_served(view_checkpoint, tmp_path):
    """ship_classifier refuses parts of a model trained on the view measured with another weighting than the one
    PFNClassifier serves it with."""
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import ship_classifier

    weights = load_checkpoint(view_checkpoint).weights_sha256()
    cells = [{"d": d, "n": n} for d, n in sorted(ship_classifier.PRIOR_CELLS)]
    part = {"part": "prior", "model_weights_sha256": weights, "cells": cells, "component": "gp"}
    path = tmp_path / "prior.json"
    path.write_text(json.dumps(part | {"view_weighting": "equal"}))
    args = [str(view_checkpoint), "--prior", str(path), "--calibration", str(path), "--real", str(path),
            "--latency", str(path)]
    with pytest.raises(SystemExit, match="view_weighting='equal'"):
        ship_classifier.main(args)
    path.write_text(json.dumps(part | {"view_weighting": "evidence"}))  # passes that check, fails the next part's
    with pytest.raises(SystemExit, match="is not a --part calibration"):
        ship_classifier.main(args)
