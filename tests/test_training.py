import dataclasses
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from priorfit.checkpoint import load_checkpoint
from priorfit.config import to_dict
from priorfit.estimators import PFNRegressor
from priorfit.model.loss import pfn_nll, pfn_predict
from priorfit.exceptions import CheckpointError, ConfigError
from priorfit.model.transformer import ModelConfig, PFNTransformer
from priorfit.priors.gp import GPPrior
from priorfit.priors.hyperpriors import Fixed
from priorfit.priors.kernels import Matern, Scale
from priorfit.training import TrainConfig, make_bar_distribution, train

from conftest import TINY_MODEL, TINY_TRAIN, tiny_prior

SMALL = dataclasses.replace(TINY_TRAIN, steps=6, checkpoint_every=3, eval_every=6)


def _weights(path):
    return load_checkpoint(path).model.state_dict()


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_same_seed_same_model(tmp_path):
    a = train(tiny_prior(), TINY_MODEL, SMALL, tmp_path / "a", progress=False)
    b = train(tiny_prior(), TINY_MODEL, SMALL, tmp_path / "b", progress=False)
    _assert_same(_weights(a.checkpoint), _weights(b.checkpoint))
    c = train(tiny_prior(), TINY_MODEL, dataclasses.replace(SMALL, seed=1), tmp_path / "c", progress=False)
    assert not torch.equal(_weights(a.checkpoint)["head.weight"], _weights(c.checkpoint)["head.weight"])


def test_resume_is_exact(tmp_path):
    straight = train(tiny_prior(), TINY_MODEL, SMALL, tmp_path / "straight", progress=False)
    first = train(tiny_prior(), TINY_MODEL, SMALL, tmp_path / "split", progress=False, stop_after=3)
    assert first.step == 3 and load_checkpoint(first.checkpoint).metadata["step"] == 3
    second = train(tiny_prior(), TINY_MODEL, SMALL, tmp_path / "split", progress=False)
    assert second.step == 6
    _assert_same(_weights(straight.checkpoint), _weights(second.checkpoint))



def test_a_finished_state_alone_gives_back_its_weights(tmp_path):
    """The committed training states are train_state.pt files only: resuming a finished one must write its model."""
    done = train(tiny_prior(), TINY_MODEL, SMALL, tmp_path / "done", progress=False)
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "train_state.pt").write_bytes((tmp_path / "done" / "train_state.pt").read_bytes())
    again = train(tiny_prior(), TINY_MODEL, SMALL, tmp_path / "copy", progress=False)
    assert again.step == SMALL.steps and math.isnan(again.datasets_per_second)
    assert load_checkpoint(again.checkpoint).metadata["step"] == SMALL.steps
    _assert_same(_weights(done.checkpoint), _weights(again.checkpoint))

def test_resume_refuses_another_config(tmp_path):
    train(tiny_prior(), TINY_MODEL, SMALL, tmp_path, progress=False, stop_after=3)
    with pytest.raises(CheckpointError, match="train_config"):
        train(tiny_prior(), TINY_MODEL, dataclasses.replace(SMALL, lr=1e-4), tmp_path, progress=False)
    # how a run executes (threads, device) may change between its parts
    resumed = train(tiny_prior(), TINY_MODEL, dataclasses.replace(SMALL, num_threads=2), tmp_path, progress=False)
    assert resumed.step == SMALL.steps


def test_reschedule_changes_only_the_step_count(tmp_path):
    train(tiny_prior(), TINY_MODEL, SMALL, tmp_path, progress=False, stop_after=3)
    longer = dataclasses.replace(SMALL, steps=8)
    with pytest.raises(CheckpointError, match="train_config"):
        train(tiny_prior(), TINY_MODEL, longer, tmp_path, progress=False)
    with pytest.raises(CheckpointError, match="train_config"):
        train(tiny_prior(), TINY_MODEL, dataclasses.replace(longer, lr=1e-4), tmp_path, progress=False, reschedule=True)
    result = train(tiny_prior(), TINY_MODEL, longer, tmp_path, progress=False, reschedule=True)
    assert result.step == 8 and load_checkpoint(result.checkpoint).metadata["train_config"]["steps"] == 8


def test_training_learns_the_prior(tmp_path):
    """After a short run the PFN beats the best constant-Gaussian guess and records its gap to the exact GP."""
    prior = GPPrior.fixed_rbf(lengthscale=0.3)
    model = ModelConfig(d_model=32, n_layers=2, n_heads=2, d_ff=64, max_features=1, n_bars=100)
    config = TrainConfig(steps=150, batch_size=32, n_points=32, lr=3e-3, border_datasets=200, eval_every=150,
                         eval_datasets=64, eval_context=(16,), checkpoint_every=150)
    result = train(prior, model, config, tmp_path, progress=False)
    record = result.history[-1]
    prior_predictive_nll = 0.5 * torch.log(torch.tensor(2 * torch.pi * 1.01)).item() + 0.5  # N(0, 1.01)
    assert record["nll@16"] < prior_predictive_nll - 0.5
    assert record["gap@16"] == pytest.approx(record["nll@16"] - record["exact@16"])
    assert load_checkpoint(result.checkpoint).metadata["history"][-1]["step"] == 150


def test_init_from_warm_starts_weights_and_borders(tmp_path, tiny_checkpoint):
    source = load_checkpoint(tiny_checkpoint)
    # zero steps run: the written weights are exactly the source's, and the source's bar borders are kept
    warm = train(tiny_prior(), TINY_MODEL, dataclasses.replace(SMALL, checkpoint_every=1), tmp_path / "warm",
                 progress=False, init_from=tiny_checkpoint, stop_after=1)
    ckpt = load_checkpoint(warm.checkpoint)
    assert torch.equal(ckpt.bar_distribution.borders, source.bar_distribution.borders)
    assert ckpt.metadata["init_from"]["step"] == source.metadata["step"]
    # one AdamW step from the source's weights moves each weight by at most about lr
    moved = max(float((ckpt.model.state_dict()[k] - v).abs().max()) for k, v in source.model.state_dict().items())
    assert 0 < moved < 3 * SMALL.learning_rate(0)
    # resuming without repeating init_from keeps the warm start's borders and provenance
    done = train(tiny_prior(), TINY_MODEL, dataclasses.replace(SMALL, checkpoint_every=1), tmp_path / "warm",
                 progress=False)
    resumed = load_checkpoint(done.checkpoint)
    assert done.step == SMALL.steps and "init_from" in resumed.metadata
    assert torch.equal(resumed.bar_distribution.borders, source.bar_distribution.borders)
    with pytest.raises(ConfigError, match="init_from"):
        train(tiny_prior(), dataclasses.replace(TINY_MODEL, d_model=16), SMALL, tmp_path / "other",
              progress=False, init_from=tiny_checkpoint)


def test_mismatched_features_and_bad_config():
    with pytest.raises(ConfigError, match="max_features"):
        train(tiny_prior(max_features=1), TINY_MODEL, SMALL, "unused", progress=False)
    with pytest.raises(ValueError, match="max_context"):
        TrainConfig(n_points=10, max_context=10)
    with pytest.raises(ValueError, match="lr"):
        TrainConfig(lr=-1.0)


def test_learning_rate_schedule():
    config = TrainConfig(steps=100, lr=1.0, warmup_fraction=0.1)
    rates = [config.learning_rate(s) for s in range(100)]
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)
    assert max(rates) == pytest.approx(1.0) and rates[-1] < 0.01
    assert all(a >= b for a, b in zip(rates[9:], rates[10:]))


def test_torchrun_data_parallel(tmp_path):
    """Two gloo ranks on the CPU: the run completes, writes one checkpoint and records both generators."""
    job = {"type": "TrainJob", "prior": to_dict(tiny_prior()), "model": to_dict(TINY_MODEL),
           "training": to_dict(dataclasses.replace(SMALL, steps=4, checkpoint_every=2, eval_every=4))}
    (tmp_path / "job.json").write_text(json.dumps(job))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",  # a free port
         "-m", "priorfit.cli", "train", str(tmp_path / "job.json"), "--out", str(tmp_path / "out"), "--quiet"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = load_checkpoint(tmp_path / "out" / "model.safetensors")
    assert ckpt.metadata["world_size"] == 2 and ckpt.metadata["step"] == 4
    state = torch.load(tmp_path / "out" / "train_state.pt", weights_only=True)
    assert len(state["generators"]) == 2 and not torch.equal(*state["generators"])


def _record_sample_calls(monkeypatch, prior) -> list[tuple[int, int | None]]:
    """Every (n_points, n_features) that `prior.sample` is called with from now on, in order."""
    calls, original = [], type(prior).sample

    def spy(self, batch_size, n_points, generator, n_features=None, **kwargs):
        calls.append((n_points, n_features))
        return original(self, batch_size, n_points, generator, n_features=n_features, **kwargs)

    monkeypatch.setattr(type(prior), "sample", spy)
    return calls


def test_context_curriculum_ramps_the_largest_context(tmp_path, monkeypatch):
    config = TrainConfig(steps=100, n_points=64, min_context=2, max_context=50, context_curriculum=0.5)
    limits = [config.largest_context(s) for s in range(100)]
    assert limits[0] == 2 and limits[49] == 50 and set(limits[50:]) == {50}
    assert all(a <= b for a, b in zip(limits, limits[1:])) and limits[24] == 26
    assert {TrainConfig(steps=10, n_points=64).largest_context(s) for s in range(10)} == {63}  # default: no ramp
    with pytest.raises(ValueError, match="context_curriculum"):
        TrainConfig(context_curriculum=1.5)

    # every step's context respects the limit of its step
    prior = tiny_prior()
    calls = _record_sample_calls(monkeypatch, prior)
    run = dataclasses.replace(SMALL, steps=8, n_queries=4, context_curriculum=1.0, eval_every=100,
                              checkpoint_every=8)
    train(prior, TINY_MODEL, run, tmp_path, resume=False, progress=False)
    n_ctx = [n_points - run.n_queries for n_points, _ in calls[-8:]]  # the training batches (the borders' and evaluator's come first)
    assert all(2 <= c <= run.largest_context(s) for s, c in enumerate(n_ctx))
    assert run.largest_context(0) < 20 == run.largest_context(7)


def test_min_and_max_features_train_only_those_feature_counts(tmp_path, monkeypatch):
    prior = tiny_prior()
    calls = _record_sample_calls(monkeypatch, prior)
    steps = 12
    for lowest, highest, allowed in ((1, 0, {1, 2}), (2, 0, {2}), (1, 1, {1})):
        calls.clear()
        run = dataclasses.replace(SMALL, steps=steps, min_features=lowest, max_features=highest, eval_every=100,
                                  checkpoint_every=steps)
        train(prior, TINY_MODEL, run, tmp_path / f"{lowest}-{highest}", resume=False, progress=False)
        assert {n_features for _, n_features in calls[-steps:]} == allowed  # the training batches (the borders' and evaluator's come first)
    with pytest.raises(ConfigError, match="min_features"):
        train(prior, TINY_MODEL, dataclasses.replace(SMALL, min_features=3), tmp_path / "3", progress=False)
    with pytest.raises(ValueError, match="min_features"):
        TrainConfig(min_features=0)
    with pytest.raises(ConfigError, match="max_features"):
        train(prior, TINY_MODEL, dataclasses.replace(SMALL, max_features=3), tmp_path / "max3", progress=False)
    with pytest.raises(ValueError, match="at least min_features"):
        TrainConfig(min_features=2, max_features=1)


def test_a_state_written_before_a_new_config_field_still_resumes(tmp_path):
    """A training state stores its config as JSON; a field added to TrainConfig later takes its default."""
    train(tiny_prior(), TINY_MODEL, SMALL, tmp_path, progress=False, stop_after=3)
    state_path = tmp_path / "train_state.pt"
    state = torch.load(state_path, weights_only=True)
    stored = json.loads(state["train_config"])
    del stored["context_curriculum"]  # as written before the field existed
    state["train_config"] = json.dumps(stored, sort_keys=True)
    torch.save(state, state_path)
    assert train(tiny_prior(), TINY_MODEL, SMALL, tmp_path, progress=False).step == SMALL.steps
    # a state from before Rao-Blackwellised targets trained on sampled ones: it resumes only under that setting
    del stored["rao_blackwell"]
    torch.save(dict(state, train_config=json.dumps(stored, sort_keys=True)), state_path)
    with pytest.raises(CheckpointError, match="train_config"):
        train(tiny_prior(), TINY_MODEL, SMALL, tmp_path, progress=False)
    assert train(tiny_prior(), TINY_MODEL, dataclasses.replace(SMALL, rao_blackwell=False), tmp_path,
                 progress=False).step == SMALL.steps
    torch.save(dict(state, train_config=json.dumps(dict(stored, lr=0.5), sort_keys=True)), state_path)
    with pytest.raises(CheckpointError, match="train_config"):
        train(tiny_prior(), TINY_MODEL, SMALL, tmp_path, progress=False)


def test_a_standardizing_model_scores_in_the_targets_own_units(tmp_path):
    """A model with standardize_targets trains; the NLL of training and evaluate (pfn_predict + pfn_nll) is the
    estimator's log density in the data's units."""
    model = dataclasses.replace(TINY_MODEL, standardize_targets=True)
    result = train(tiny_prior(), model, SMALL, tmp_path, progress=False)
    ckpt = load_checkpoint(result.checkpoint)
    assert ckpt.model_config.standardize_targets and math.isfinite(result.history[-1]["nll@8"])
    batch = tiny_prior().sample(3, 20, torch.Generator().manual_seed(5), n_features=2)
    x, y = batch.x, 10.0 * batch.y + 3.0  # targets far from the prior's scale
    nll = pfn_nll(ckpt.bar_distribution, *pfn_predict(ckpt.model, x, y, 12), y[:, 12:])
    for i in range(3):
        reg = PFNRegressor(model=str(result.checkpoint), normalize=False).fit(x[i, :12].numpy(), y[i, :12].numpy())
        log_density = reg.predict_distribution(x[i, 12:].numpy()).log_prob(y[i, 12:].numpy())
        np.testing.assert_allclose(-log_density, nll[i].numpy(), rtol=1e-4, atol=1e-4)


def test_standardized_borders_do_not_depend_on_the_prior_s_scale():
    """Borders of a standardising model describe standardised targets: scaling the prior's functions and noise
    by 10 leaves them unchanged (raw borders scale by 10)."""
    def prior(scale):  # a well-conditioned kernel, so that the jitter does not break the scaling
        return GPPrior(kernel=Scale(Matern(nu=0.5, lengthscale=Fixed(0.3)), outputscale=Fixed(scale ** 2)),
                       noise_std=Fixed(0.1 * scale), mean=Fixed(0.0))

    small, large = prior(1.0), prior(10.0)
    raw = [make_bar_distribution(p, 50, 24, 512, seed=0).borders for p in (small, large)]
    torch.testing.assert_close(raw[1], 10 * raw[0], rtol=1e-4, atol=1e-5)
    std = [make_bar_distribution(p, 50, 24, 512, seed=0, standardize_context=(8, 16)).borders for p in (small, large)]
    torch.testing.assert_close(std[1], std[0], rtol=1e-4, atol=1e-4)
    assert not torch.allclose(std[0], raw[0], rtol=0.05)


def test_a_model_warm_starts_an_invariant_one(tmp_path, tiny_checkpoint):
    """The same architecture, made invariant: the network's weights carry over, the bars are placed afresh for
    the new prior's targets; any other difference of configuration is refused."""
    from priorfit.priors import GPPrior
    from priorfit.priors.invariant import InvariantGPPrior

    source = load_checkpoint(tiny_checkpoint)
    invariant = dataclasses.replace(TINY_MODEL, invariant=True)
    run = dataclasses.replace(SMALL, steps=2, eval_every=2, checkpoint_every=2)
    result = train(InvariantGPPrior(tiny_prior()), invariant, run, tmp_path / "inv", resume=False, progress=False,
                   init_from=str(tiny_checkpoint))
    warm = load_checkpoint(result.checkpoint)
    assert warm.model_config.invariant and warm.metadata["init_from"]["source"] == str(tiny_checkpoint)
    assert not torch.equal(warm.bar_distribution.borders, source.bar_distribution.borders)
    from priorfit.training import _warm_start_weights

    powered = dataclasses.replace(invariant, power_transform=True)  # both changes at once: a transform has no weights
    weights = _warm_start_weights(source, powered, {})
    assert weights.keys() == source.model.state_dict().keys()
    assert all(torch.equal(v, source.model.state_dict()[k]) for k, v in weights.items())
    powered_model = PFNTransformer(powered)  # and back, from a power-transforming model
    powered_model.load_state_dict(warm.model.state_dict())
    from_powered = dataclasses.replace(warm, model=powered_model)
    back = _warm_start_weights(from_powered, invariant, {})
    assert all(torch.equal(v, warm.model.state_dict()[k]) for k, v in back.items())
    robust = _warm_start_weights(from_powered, dataclasses.replace(invariant, robust_inputs=True), {})  # one to other
    assert all(torch.equal(v, warm.model.state_dict()[k]) for k, v in robust.items())
    with pytest.raises(ConfigError, match="another model configuration"):
        train(InvariantGPPrior(tiny_prior()), dataclasses.replace(invariant, d_ff=32), run, tmp_path / "bad",
              resume=False, progress=False, init_from=str(tiny_checkpoint))
    assert isinstance(InvariantGPPrior(GPPrior(max_features=2)).gp, GPPrior)


def test_log_uniform_context_sizes_give_each_doubling_the_same_share() -> None:
    from priorfit.training import draw_context_size

    gen = torch.Generator().manual_seed(0)
    sizes = torch.tensor([draw_context_size(2, 127, "log_uniform", gen) for _ in range(20000)])
    assert sizes.min() == 2 and sizes.max() == 127
    octaves = [float(((sizes >= 2**k) & (sizes < 2**(k + 1))).double().mean()) for k in range(1, 7)]
    assert all(abs(share - 1 / 6) < 0.015 for share in octaves), octaves
    uniform = torch.tensor([draw_context_size(2, 127, "uniform", gen) for _ in range(20000)])
    assert float((uniform < 8).double().mean()) < 0.06 < float((sizes < 8).double().mean())
    with pytest.raises(ValueError, match="context_sampling"):
        TrainConfig(context_sampling="octaves")


def test_a_model_warm_starts_one_for_fewer_or_more_features_exactly(tmp_path, tiny_checkpoint):
    """Narrowed, a model computes on d <= its new max_features exactly what the wide one computes on the same
    inputs zero-padded (its Fourier features' cosines at x = 0 folded into the bias); and a warm start for
    another prior places the bars afresh."""
    from types import SimpleNamespace

    from priorfit.model.transformer import PFNTransformer
    from priorfit.training import _warm_start_weights

    wide = ModelConfig(d_model=32, n_layers=1, n_heads=2, d_ff=32, max_features=4, n_bars=20, n_frequencies=3)
    torch.manual_seed(0)
    source = SimpleNamespace(model_config=wide, model=PFNTransformer(wide).eval())
    for keep in (1, 2):
        narrow_config = dataclasses.replace(wide, max_features=keep)
        narrow = PFNTransformer(narrow_config).eval()
        narrow.load_state_dict(_warm_start_weights(source, narrow_config, narrow.state_dict()))
        x, y = torch.rand(3, 9, keep), torch.randn(3, 6)
        with torch.no_grad():
            torch.testing.assert_close(narrow(x[:, :6], y, x[:, 6:]), source.model(x[:, :6], y, x[:, 6:]))
    # widened, it computes on its old inputs exactly what it did, and the new features start ignored
    wider_config = dataclasses.replace(wide, max_features=6)
    wider = PFNTransformer(wider_config).eval()
    wider.load_state_dict(_warm_start_weights(source, wider_config, wider.state_dict()))
    x, y = torch.rand(3, 9, 4), torch.randn(3, 6)
    with torch.no_grad():
        torch.testing.assert_close(wider(x[:, :6], y, x[:, 6:]), source.model(x[:, :6], y, x[:, 6:]))
        x6 = torch.cat([x, torch.rand(3, 9, 2)], -1)
        torch.testing.assert_close(wider(x6[:, :6], y, x6[:, 6:]), source.model(x[:, :6], y, x[:, 6:]))
    with pytest.raises(ConfigError, match="another model configuration"):
        _warm_start_weights(source, dataclasses.replace(wide, max_features=6, d_model=64), {})

    run = dataclasses.replace(SMALL, steps=2, eval_every=2, checkpoint_every=2)
    result = train(tiny_prior(max_features=1), dataclasses.replace(TINY_MODEL, max_features=1), run,
                   tmp_path / "narrow", resume=False, progress=False, init_from=str(tiny_checkpoint))
    warm = load_checkpoint(result.checkpoint)
    assert warm.model_config.max_features == 1
    assert not torch.equal(warm.bar_distribution.borders, load_checkpoint(tiny_checkpoint).bar_distribution.borders)


def test_a_model_warm_starts_a_deeper_one_exactly(tmp_path, tiny_checkpoint):
    """Deepened, a model computes exactly what it did (its new layers add zero to the residual stream), its old
    layers keep their weights and order, and training then moves the new layers' zeroed projections."""
    from types import SimpleNamespace

    from priorfit.model.transformer import PFNTransformer
    from priorfit.training import _warm_start_weights

    for shallow in (TINY_MODEL, dataclasses.replace(TINY_MODEL, n_classes=3, invariant=True)):
        torch.manual_seed(0)
        source = SimpleNamespace(model_config=shallow, model=PFNTransformer(shallow).eval())
        for layers in (3, 4, 5):
            deep_config = dataclasses.replace(shallow, n_layers=layers)
            deep = PFNTransformer(deep_config).eval()
            deep.load_state_dict(_warm_start_weights(source, deep_config, deep.state_dict()))
            x = torch.rand(3, 9, 2)
            y = torch.randint(0, 3, (3, 6)) if shallow.n_classes else torch.randn(3, 6)
            with torch.no_grad():
                torch.testing.assert_close(deep(x[:, :6], y, x[:, 6:]), source.model(x[:, :6], y, x[:, 6:]))
            placed = {i * layers // shallow.n_layers: i for i in range(shallow.n_layers)}
            assert len(placed) == shallow.n_layers
            for position, layer in enumerate(deep.layers):
                if position in placed:  # an old layer, its weights unchanged
                    _assert_same(layer.state_dict(), source.model.layers[placed[position]].state_dict())
                else:  # a new one: residual branches' outputs zero, the rest initialised
                    assert not torch.count_nonzero(layer.out_proj.weight)
                    assert not torch.count_nonzero(layer.ff[2].weight)
                    assert torch.count_nonzero(layer.q_proj.weight) and torch.count_nonzero(layer.ff[0].weight)

    deep_model = dataclasses.replace(TINY_MODEL, n_layers=4)
    run = dataclasses.replace(SMALL, steps=2, eval_every=2, checkpoint_every=2)
    result = train(tiny_prior(), deep_model, run, tmp_path / "deep", resume=False, progress=False,
                   init_from=str(tiny_checkpoint))
    trained = load_checkpoint(result.checkpoint).model
    assert torch.count_nonzero(trained.layers[1].out_proj.weight)  # a new layer has learned
    assert load_checkpoint(result.checkpoint).model_config.n_layers == 4


def test_a_step_with_non_finite_gradients_is_skipped_and_counted(tmp_path, monkeypatch):
    """A finite loss whose gradients overflow (an input far out of a tiny context) takes no optimiser step either:
    the weights the second step starts from are the first step's, and the run counts the skip."""
    import priorfit.training as training

    original, norms, weights = torch.nn.utils.clip_grad_norm_, [], []

    def overflowing(parameters, max_norm):
        parameters = list(parameters)
        weights.append([p.detach().clone() for p in parameters])
        norms.append(original(parameters, max_norm))
        return torch.tensor(float("inf")) if len(norms) == 2 else norms[-1]

    monkeypatch.setattr(training.torch.nn.utils, "clip_grad_norm_", overflowing)
    run = dataclasses.replace(SMALL, steps=3, eval_every=3, checkpoint_every=3, border_datasets=16)
    result = train(tiny_prior(), TINY_MODEL, run, tmp_path, progress=False)
    assert len(norms) == 3 and result.history[-1]["skipped_steps"] == 1
    assert all(torch.equal(a, b) for a, b in zip(weights[1], weights[2]))  # step 2 was not taken
    assert not all(torch.equal(a, b) for a, b in zip(weights[0], weights[1]))  # step 1 was
    assert all(torch.isfinite(v).all() for v in load_checkpoint(result.checkpoint).model.state_dict().values())


def test_a_step_with_a_non_finite_loss_is_skipped_and_counted(tmp_path, monkeypatch):
    """A batch whose targets overflow (a prior with extreme tails) takes no optimiser step: the weights stay
    finite and the run says how many steps it skipped."""
    from priorfit.priors.base import Batch

    original, calls = GPPrior.sample, []

    def overflowing(self, batch_size, n_points, generator, **kwargs):
        batch = original(self, batch_size, n_points, generator, **kwargs)
        calls.append(1)
        if len(calls) == 3:  # the first training step's batch (after the borders' and the held-out sets)
            y = batch.y.clone()
            y[0, 0] = 1e300  # inf in float32, in the context (a query target's exact normal would not see it)
            return Batch(x=batch.x, y=y, params=batch.params)
        return batch

    monkeypatch.setattr(GPPrior, "sample", overflowing)
    run = dataclasses.replace(SMALL, steps=3, eval_every=3, checkpoint_every=3, border_datasets=16)
    result = train(tiny_prior(), TINY_MODEL, run, tmp_path, progress=False)
    ckpt = load_checkpoint(result.checkpoint)
    assert ckpt.metadata["skipped_steps"] == 1 and result.history[-1]["skipped_steps"] == 1
    assert all(torch.isfinite(v).all() for v in ckpt.model.state_dict().values())


def test_rao_blackwellised_targets_are_used_when_the_prior_declares_them(tmp_path, monkeypatch):
    """With rao_blackwell (the default) a step asks the prior for its conditional and the run differs from one on
    the sampled targets; with it off, the prior is never asked."""
    calls = []
    original = GPPrior.conditional

    def counting(self, batch, n_context):
        calls.append(n_context)
        return original(self, batch, n_context)

    monkeypatch.setattr(GPPrior, "conditional", counting)
    run = dataclasses.replace(SMALL, steps=3, eval_every=3, checkpoint_every=3, border_datasets=16)
    rb = train(tiny_prior(), TINY_MODEL, run, tmp_path / "rb", progress=False)
    assert len(calls) == 3
    sampled = train(tiny_prior(), TINY_MODEL, dataclasses.replace(run, rao_blackwell=False), tmp_path / "s",
                    progress=False)
    assert len(calls) == 3
    assert not torch.equal(_weights(rb.checkpoint)["head.weight"], _weights(sampled.checkpoint)["head.weight"])


def _label_prior(max_classes: int = 2):
    from priorfit.priors import GPClassificationPrior, RBF

    gp = GPPrior(kernel=Scale(RBF(lengthscale=Fixed(0.3)), outputscale=Fixed(9.0)), noise_std=Fixed(0.1),
                 mean=Fixed(0.0), max_features=1)
    return GPClassificationPrior(gp=gp, max_classes=max_classes)


_CLASSIFIER = ModelConfig(d_model=32, n_layers=2, n_heads=2, d_ff=64, max_features=1, n_classes=3, invariant=True)


def test_a_classifier_learns_its_prior_of_labels(tmp_path):
    """After a short run on sharply separated classes, the classifier's held-out log loss beats the context's
    class frequencies (Laplace-smoothed) by a wide margin: it reads the inputs, not only the label counts."""
    from priorfit.model.categorical import categorical_nll, relabel_by_context

    config = TrainConfig(steps=400, batch_size=32, n_points=32, lr=3e-3, eval_every=400, eval_datasets=64,
                         eval_context=(16,), checkpoint_every=400)
    result = train(_label_prior(), _CLASSIFIER, config, tmp_path, progress=False)
    checkpoint = load_checkpoint(result.checkpoint)
    assert checkpoint.bar_distribution is None and checkpoint.model_config.n_classes == 3
    batch = _label_prior().sample(400, 48, torch.Generator().manual_seed(9), n_context=16)
    labels, k, _ = relabel_by_context(batch.y, 16)
    with torch.no_grad():
        logits = checkpoint.model(batch.x[:, :16].float(), labels[:, :16], batch.x[:, 16:].float())
    pfn = float(categorical_nll(logits, k, labels[:, 16:]).nanmean())
    counts = torch.stack([(labels[:, :16] == c).sum(1) for c in range(2)], 1).double() + 0.5
    freq = torch.log(counts / counts.sum(1, keepdim=True)).gather(1, labels[:, 16:].clamp_min(0))
    baseline = float(-freq[labels[:, 16:] >= 0].mean())
    assert pfn < baseline - 0.1, (pfn, baseline)
    assert result.history[-1]["nll@16"] < baseline


def test_a_classifier_resumes_exactly(tmp_path):
    config = TrainConfig(steps=6, batch_size=8, n_points=16, lr=3e-3, eval_every=6, eval_datasets=8,
                         eval_context=(8,), checkpoint_every=3)
    straight = train(_label_prior(3), _CLASSIFIER, config, tmp_path / "straight", progress=False)
    train(_label_prior(3), _CLASSIFIER, config, tmp_path / "split", progress=False, stop_after=3)
    second = train(_label_prior(3), _CLASSIFIER, config, tmp_path / "split", progress=False)
    _assert_same(_weights(straight.checkpoint), _weights(second.checkpoint))
    with pytest.raises(ConfigError, match="up to 4 classes; model_config.n_classes must be at least that"):
        train(_label_prior(4), _CLASSIFIER, config, tmp_path / "more", progress=False)
