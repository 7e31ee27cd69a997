import pickle
import warnings

import numpy as np
import torch
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import check_estimator

from priorfit.estimators import PFNRegressor
from priorfit.exceptions import CheckpointError, InputDataError, OutOfDomainWarning


def _data(n=15, d=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-3, 5, (n, d))
    y = np.sin(X).sum(1) * 4 + 10 + rng.normal(0, 0.3, n)
    return X, y


@pytest.fixture
def fitted(tiny_checkpoint):
    X, y = _data()
    return PFNRegressor(model=str(tiny_checkpoint)).fit(X, y), X, y


def test_fit_predict_shapes_and_attributes(fitted):
    reg, X, y = fitted
    assert reg.n_features_in_ == 2 and reg.predict(X[:4]).shape == (4,)
    dist = reg.predict_distribution(X[:4])
    assert len(dist) == 4
    assert dist.quantile([0.05, 0.5, 0.95]).shape == (4, 3)
    assert np.all(np.diff(dist.quantile([0.05, 0.5, 0.95]), axis=1) > 0)
    assert reg.predict_quantiles(X[:4], [0.1, 0.9]).shape == (4, 2)
    assert np.all(dist.variance > 0)


def test_density_is_in_user_units(fitted):
    """log_prob in the user's units integrates to 1 and matches the cdf's derivative."""
    reg, X, y = fitted
    dist = reg.predict_distribution(X[:1])
    pdf = lambda t: float(np.exp(dist.log_prob(np.array([t]))[0]))  # noqa: E731
    lo, hi = dist.quantile([1e-7, 1 - 1e-7])[0]
    grid = np.linspace(lo, hi, 200_001)
    on_grid = reg.predict_distribution(np.repeat(X[:1], len(grid), axis=0))  # the same query, once per grid point
    mass = np.trapezoid(np.exp(on_grid.log_prob(grid)), grid)
    assert mass == pytest.approx(1.0, abs=1e-3)
    t, h = dist.mean[0], 1e-4 * reg.y_scale_
    slope = (dist.cdf(np.array([t + h])) - dist.cdf(np.array([t - h])))[0] / (2 * h)
    assert slope == pytest.approx(pdf(t), rel=1e-3)


def test_an_ensemble_averages_the_predictions_for_transformed_data(tiny_checkpoint):
    """ensemble_size=k is the average of the plain model's predictive distributions for the k transformed copies
    of the user's data (features reflected about their range's midpoint and reordered, y negated), mapped back;
    its density still integrates to 1 in the user's units."""
    X, y = _data()
    reg = PFNRegressor(model=str(tiny_checkpoint), ensemble_size=6).fit(X, y)
    assert len(reg.ensemble_) == 6
    grid = np.linspace(y.min() - 5, y.max() + 5, 4001)
    query = np.repeat(X[:1], len(grid), axis=0)
    members = []
    for t in reg.ensemble_.transforms:
        Xt = X[:, list(t.permutation)]
        Xt = np.where(t.reflect, Xt.min(0) + Xt.max(0) - Xt, Xt)
        qt = np.where(t.reflect, Xt.min(0) + Xt.max(0) - query[:, list(t.permutation)], query[:, list(t.permutation)])
        sign = -1.0 if t.negate else 1.0
        plain = PFNRegressor(model=str(tiny_checkpoint)).fit(Xt, sign * y).predict_distribution(qt)
        members.append(1 - plain.cdf(-grid) if t.negate else plain.cdf(grid))
    ensemble = reg.predict_distribution(query)
    # bar masses are exact; a negated member's shape inside each bar is flattened, hence the tolerance
    np.testing.assert_allclose(ensemble.cdf(grid), np.mean(members, axis=0), atol=3e-3)
    lo, hi = ensemble.quantile([1e-7, 1 - 1e-7])[0]
    fine = np.linspace(lo, hi, 200_001)
    density = np.exp(reg.predict_distribution(np.repeat(X[:1], len(fine), axis=0)).log_prob(fine))
    assert np.trapezoid(density, fine) == pytest.approx(1.0, abs=1e-3)


def test_affine_equivariance_of_targets(fitted, tiny_checkpoint):
    """With normalize=True, y -> a y + b moves the mean to a mean + b and the log density by -log a."""
    reg, X, y = fitted
    a, b = 3.5, -20.0
    reg2 = PFNRegressor(model=str(tiny_checkpoint)).fit(X, a * y + b)
    d1, d2 = reg.predict_distribution(X[:5]), reg2.predict_distribution(X[:5])
    np.testing.assert_allclose(d2.mean, a * d1.mean + b, rtol=1e-5)
    np.testing.assert_allclose(d2.log_prob(a * y[:5] + b), d1.log_prob(y[:5]) - np.log(a), atol=1e-4)


def test_queries_are_independent(fitted):
    reg, X, y = fitted
    together = reg.predict(X[:6])
    alone = np.array([reg.predict(X[i:i + 1])[0] for i in range(6)])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6)
    reg.set_params(query_batch_size=2)
    np.testing.assert_allclose(reg.predict(X[:6]), together, rtol=1e-5, atol=1e-6)


def test_pickle_and_clone(fitted):
    reg, X, y = fitted
    again = pickle.loads(pickle.dumps(reg))
    np.testing.assert_array_equal(again.predict(X), reg.predict(X))
    assert clone(reg).get_params() == reg.get_params()


def test_out_of_domain_queries_warn(fitted):
    reg, X, y = fitted
    with pytest.warns(OutOfDomainWarning):
        reg.predict(X[:1] + 100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reg.predict(X[:3])


@pytest.mark.parametrize(
    "X,y,match",
    [
        (np.array([[0.1, np.nan], [0.2, 0.3], [0.4, 0.1]]), np.array([1.0, 2.0, 3.0]), "NaN"),
        (np.array([[0.1, 0.2], [0.2, 0.3], [0.4, 0.1]]), np.array([1.0, np.inf, 3.0]), "infinity"),
        (np.zeros((3, 2)), np.array([1.0, 2.0]), "inconsistent numbers of samples"),
        (np.zeros(3), np.array([1.0, 2.0, 3.0]), "2D array"),
        (np.array([[0.1, 0.2]]), np.array([1.0]), "at least 2"),
        (np.zeros((0, 2)), np.zeros(0), "0 sample"),
        (np.random.rand(5, 2), np.ones(5), "y is constant"),
        (np.random.rand(5, 3), np.arange(5.0), "3 features, but the model was trained for at most 2"),
        (np.random.rand(30, 2), np.arange(30.0), "at most 20 points"),
    ],
)
def test_bad_training_data(tiny_checkpoint, X, y, match):
    with pytest.raises(ValueError, match=match):
        PFNRegressor(model=str(tiny_checkpoint)).fit(X, y)


def test_bad_queries_and_parameters(fitted, tiny_checkpoint):
    reg, X, y = fitted
    with pytest.raises(ValueError, match="X has 1 features, but PFNRegressor is expecting 2"):
        reg.predict(X[:, :1])
    with pytest.raises(ValueError, match="NaN"):
        reg.predict(np.array([[np.nan, 0.0]]))
    with pytest.raises(InputDataError, match="query_batch_size"):
        PFNRegressor(model=str(tiny_checkpoint), query_batch_size=0).fit(X, y)
    for bad in (0, 2.0, True):
        with pytest.raises(InputDataError, match="ensemble_size"):
            PFNRegressor(model=str(tiny_checkpoint), ensemble_size=bad).fit(X, y)
    for bad in ("bf16", None, "float64"):
        with pytest.raises(InputDataError, match="precision"):
            PFNRegressor(model=str(tiny_checkpoint), precision=bad).fit(X, y)
    with pytest.raises(ValueError, match="y"):
        reg.predict_distribution(X[:3]).log_prob(y[:2])
    with pytest.raises(InputDataError, match="point_estimate"):
        PFNRegressor(model=str(tiny_checkpoint), point_estimate="mode").fit(X, y)


def test_the_point_estimate_is_the_median_or_the_mean(fitted, tiny_checkpoint):
    reg, X, y = fitted
    dist = reg.predict_distribution(X[:4])
    # the default: the median (from the float32 logits)
    np.testing.assert_allclose(reg.predict(X[:4]), dist.quantile([0.5])[:, 0], rtol=1e-6, atol=1e-6)
    mean = PFNRegressor(model=str(tiny_checkpoint), point_estimate="mean").fit(X, y)
    np.testing.assert_array_equal(mean.predict(X[:4]), dist.mean)


def test_missing_and_corrupted_checkpoint(tmp_path, tiny_checkpoint):
    X, y = _data()
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        PFNRegressor(model=str(tmp_path / "nope.safetensors")).fit(X, y)
    broken = tmp_path / "broken.safetensors"
    data = bytearray(tiny_checkpoint.read_bytes())
    data[-3] ^= 0x55
    broken.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        PFNRegressor(model=str(broken)).fit(X, y)


def test_a_training_run_s_folder_is_a_model(tmp_path, tiny_checkpoint):
    """model=DIR takes the folder `priorfit train --out DIR` wrote (its model.safetensors); an empty folder is a
    clear error."""
    X, y = _data()
    by_file = PFNRegressor(model=str(tiny_checkpoint)).fit(X, y).predict(X[:3])
    by_folder = PFNRegressor(model=str(tiny_checkpoint.parent)).fit(X, y).predict(X[:3])
    np.testing.assert_array_equal(by_file, by_folder)
    with pytest.raises(CheckpointError, match="folder without a model.safetensors"):
        PFNRegressor(model=str(tmp_path)).fit(X, y)


def test_unfitted_raises(tiny_checkpoint):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        PFNRegressor(model=str(tiny_checkpoint)).predict(np.zeros((2, 2)))


def test_scikit_learn_estimator_checks(wide_checkpoint):
    expected = {
        "check_regressors_train": "asserts a training-set R^2 above 0.5; the model used here is untrained "
        "(accuracy is tested against the exact GP elsewhere)",
    }
    check_estimator(PFNRegressor(model=str(wide_checkpoint)), expected_failed_checks=expected, on_fail="raise")


@pytest.mark.parametrize("name", ["invariant_default", "gp_default"])
def test_the_shipped_model_loads_and_carries_its_fidelity(name):
    from priorfit.estimators import load_model, shipped_models

    assert name in shipped_models()
    ckpt = load_model(name)
    assert ckpt.model_config.max_features == 4
    cells = ckpt.metadata["fidelity"]["cells"]
    assert {c["n_context"] for c in cells} == {2, 4, 8, 16, 32, 64, 128}
    assert {c["n_features"] for c in cells} == {1, 2, 3, 4}
    X, y = _data(n=40, d=3)
    reg = PFNRegressor(model=name).fit(X, y)
    dist = reg.predict_distribution(X[:5])
    assert np.all(np.isfinite(dist.log_prob(y[:5])))
    # the shipped GP model interpolates smooth data far better than predicting the mean
    assert reg.score(X, y) > 0.5


def test_the_shipped_robust_model_resists_outliers_and_carries_its_fidelity():
    import json
    from pathlib import Path

    from priorfit.models import load_model, shipped_models

    assert "robust" in shipped_models()
    ckpt = load_model("robust")
    cells = ckpt.metadata["fidelity"]["cells"]
    assert {(c["n_features"], c["n_context"]) for c in cells} == {(d, n) for d in (1, 2) for n in (4, 16, 64)}
    assert all("marginal" in c["references"] for c in cells)
    results = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "robust_fidelity.json"
    if results.exists():  # absent in an installed package
        assert json.loads(results.read_text())["cells"] == cells
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, size=(64, 1))
    clean = np.sin(2 * X[:, 0])
    y = clean + 0.05 * rng.standard_normal(64)
    y[::10] += 8.0  # 7 gross outliers, all upward
    Xq = np.linspace(-1.8, 1.8, 50)[:, None]
    truth = np.sin(2 * Xq[:, 0])
    errors = {}
    for name in ("robust", "invariant_default"):
        reg = PFNRegressor(model=name, point_estimate="median").fit(X, y)
        errors[name] = float(np.sqrt(np.mean((reg.predict(Xq) - truth) ** 2)))
    # the robust model discounts the outliers; a Gaussian-noise model is pulled up towards them
    assert errors["robust"] < 0.5 * errors["invariant_default"], errors


def test_the_shipped_bnn_model_carries_its_fidelity_and_fits_network_functions():
    import json
    from pathlib import Path

    from priorfit.models import load_model, shipped_models

    assert "bnn" in shipped_models()
    ckpt = load_model("bnn")
    cells = ckpt.metadata["fidelity"]["cells"]
    assert {(c["n_features"], c["n_context"]) for c in cells} == {(d, n) for d in (1, 2) for n in (2, 4, 8, 16, 32, 64)}
    assert all(c["references"]["marginal"]["datasets"] == 8 for c in cells)
    results = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "bnn_fidelity.json"
    if results.exists():  # absent in an installed package
        assert json.loads(results.read_text())["cells"] == cells
    rng = np.random.default_rng(1)
    X = rng.uniform(0, 10, size=(64, 2))
    f = lambda Z: np.maximum(Z[:, 0] - 4, 0) - 0.5 * np.maximum(6 - Z[:, 1], 0)  # noqa: E731 (a kinked surface)
    y = 100 + 3 * f(X) + 0.1 * rng.standard_normal(64)
    Xq = rng.uniform(0, 10, size=(200, 2))
    reg = PFNRegressor(model="bnn", point_estimate="median").fit(X, y)
    assert reg.score(Xq, 100 + 3 * f(Xq)) > 0.99
    with pytest.raises(ValueError, match="feature"):
        PFNRegressor(model="bnn").fit(rng.uniform(size=(8, 3)), rng.uniform(size=8))


@pytest.mark.parametrize("name", ["invariant_default", "gp_default"])
def test_the_shipped_fidelity_is_reproducible_and_is_what_the_results_file_says(name):
    """The report in a shipped model's metadata is the committed results file (quoted in the docs), and a
    cell's PFN and oracle figures come out again from the shipped weights (by the report's own path)."""
    import dataclasses
    import json
    from pathlib import Path

    from priorfit.evaluate import FidelityReport, evaluate
    from priorfit.models import load_model

    ckpt = load_model(name)
    shipped = FidelityReport.from_json(ckpt.metadata["fidelity"])
    results = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / f"{name}_fidelity.json"
    if results.exists():  # absent in an installed package
        assert FidelityReport.from_json(json.loads(results.read_text())).cells == shipped.cells
    config = dataclasses.replace(shipped.config, n_context=(16,), n_features=(2,), marginal_datasets=0,
                                 ml2_datasets=0, timing_datasets=1)
    cell = evaluate(ckpt, config, progress=False, examples=False).cells[0]
    recorded = next(c for c in shipped.cells if (c.n_features, c.n_context) == (2, 16))
    pairs = [(cell.pfn.nll, recorded.pfn.nll), (cell.pfn.crps, recorded.pfn.crps),
             (cell.pfn.coverage_90, recorded.pfn.coverage_90), (cell.bar_floor, recorded.bar_floor),
             (cell.references["oracle"].nll, recorded.references["oracle"].nll),
             (cell.gap("oracle"), recorded.gap("oracle"))]
    for i, (got, want) in enumerate(pairs):
        assert abs(got - want) < 1e-4, i


@pytest.mark.filterwarnings("ignore:this CPU has no bfloat16")
@pytest.mark.parametrize("ensemble_size", [1, 4])
def test_bfloat16_inference_stays_close_to_float32(ensemble_size):
    """The shipped model in bfloat16, plain and as an ensemble (whose mixing stays float64): per query, KL from the
    float32 predictive below 0.005 nats (0.0003 on average when measured), and still a density that integrates
    to 1. A set_params after fit does not change the precision its context was encoded in."""
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(40, 2))
    y = np.sin(5 * X[:, 0]) + 0.1 * rng.normal(size=40)
    Xq = rng.uniform(size=(50, 2))
    exact = PFNRegressor(ensemble_size=ensemble_size).fit(X, y).predict_distribution(Xq)
    reg = PFNRegressor(ensemble_size=ensemble_size, precision="bfloat16").fit(X, y)
    fast = reg.predict_distribution(Xq)
    assert reg.precision_ == "bfloat16" and fast.logits.dtype == torch.float64
    la, lb = torch.log_softmax(exact.logits, -1), torch.log_softmax(fast.logits, -1)
    kl = (la.exp() * (la - lb)).sum(-1)
    assert float(kl.max()) < 5e-3 and float(kl.mean()) < 2e-3
    assert not torch.equal(exact.logits, fast.logits)  # it did run in another precision
    grid = np.linspace(-4, 4, 8001)
    density = np.exp(fast.log_prob(np.broadcast_to(grid[:, None], (grid.size, 50))))
    np.testing.assert_allclose(density.sum(0) * (grid[1] - grid[0]), 1.0, atol=2e-3)
    reg.set_params(precision="float32")
    # still bfloat16 until refit
    np.testing.assert_allclose(reg.predict(Xq), fast.quantile([0.5])[:, 0], rtol=1e-6, atol=1e-6)
