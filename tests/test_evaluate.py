import dataclasses
import json
import math

import pytest
import torch

from priorfit.checkpoint import load_checkpoint
from priorfit.cli import main
from priorfit.evaluate import EvaluateConfig, FidelityCell, FidelityReport, evaluate, fidelity_report, format_table
from priorfit.exact.gp import GPMLII
from priorfit.exact.marginal import GPMarginal
from priorfit.model.ensemble import DatasetTransform, SymmetryEnsemble
from priorfit.model.loss import pfn_nll, pfn_predict
from priorfit.seeding import dataset_seed


def test_quick_evaluate_writes_table_json_and_plots(tmp_path, tiny_checkpoint, capsys):
    out = tmp_path / "report"
    assert main(["evaluate", str(tiny_checkpoint), "--quick", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "-marginal" in printed and "wrote" in printed
    data = json.loads((out / "evaluate.json").read_text())
    quick = EvaluateConfig.quick()
    assert [(c["n_features"], c["n_context"]) for c in data["cells"]] == [(1, n) for n in quick.n_context]
    for c in data["cells"]:
        refs = c["references"]
        assert set(refs) == {"oracle", "marginal", "ml2"}
        for scores in (c["pfn"], *refs.values()):
            for key in ("nll", "crps", "coverage_50", "coverage_90", "ms_per_dataset"):
                assert math.isfinite(scores[key]), key
            assert 0 <= scores["coverage_50"] <= scores["coverage_90"] <= 1 and scores["crps"] > 0
        for name in refs:
            assert math.isfinite(refs[name]["gap"]), name
        assert math.isfinite(refs["marginal"]["max_r_hat"]) and refs["ml2"]["max_r_hat"] is None
        assert refs["marginal"]["datasets"] == quick.marginal_datasets
        assert refs["ml2"]["datasets"] + refs["ml2"]["failures"] == quick.ml2_datasets
    assert set(data["calibration"]) == {"pfn", "oracle", "marginal", "ml2"}
    assert data["labels"]["marginal"] == "marginal (NUTS)" and data["kinds"]["ml2"] == "fitted"
    assert all(len(v) == len(data["levels"]) for v in data["calibration"].values())
    for name in ("evaluate.txt", "nll_vs_context.png", "calibration.png", "examples.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "nll_vs_context.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(out.glob(".*.tmp")) and not (out / "cells.partial.json").exists()


def test_report_round_trips_through_json_and_merges(tiny_checkpoint):
    ckpt = load_checkpoint(tiny_checkpoint)
    base = dict(n_context=(4,), n_datasets=8, n_queries=8, marginal_datasets=0, ml2_datasets=0, example_context=(4,))
    one = evaluate(ckpt, EvaluateConfig(n_features=(1,), **base), progress=False)
    two = evaluate(ckpt, EvaluateConfig(n_features=(2,), **base), progress=False)
    both = evaluate(ckpt, EvaluateConfig(n_features=(1, 2), **base), progress=False)
    again = FidelityReport.from_json(json.loads(json.dumps(one.to_json())))
    assert again.cells == one.cells and again.calibration == one.calibration and again.examples == one.examples
    merged = FidelityReport.merge([two, again])
    assert [(c.n_features, c.n_context) for c in merged.cells] == [(1, 4), (2, 4)]
    # the same datasets either way (seeded per cell), so the pooled curves agree with one run over both d
    for name, curve in both.calibration.items():
        assert merged.calibration[name] == pytest.approx(curve)
    assert merged.calibration_points == both.calibration_points


def test_an_ensemble_report_scores_the_average_of_its_members(tiny_checkpoint):
    """With ensemble_size=k the PFN column is the members' mixture: its NLL is below the members' mean NLL
    (Jensen) and the cell records the member count; the oracle column does not change."""
    ckpt = load_checkpoint(tiny_checkpoint)
    base = EvaluateConfig(n_context=(8,), n_features=(2,), n_datasets=16, n_queries=16, marginal_datasets=0,
                          ml2_datasets=0, timing_datasets=1, path="raw")
    (plain,) = evaluate(ckpt, base, progress=False, examples=False).cells
    ensemble = SymmetryEnsemble.create(ckpt.prior.symmetries, ckpt.bar_distribution, 2, 3)
    members = []
    for t in ensemble.transforms:  # each member alone: the plain model on transformed data
        one = SymmetryEnsemble((DatasetTransform((0, 1), (False, False)),), ckpt.bar_distribution)
        batch = ckpt.prior.sample(16, 24, torch.Generator().manual_seed(dataset_seed(base.seed, 2, 8)),
                                  n_features=2)
        x, y = t.inputs(batch.x), t.targets(batch.y)
        members.append(float(pfn_nll(ckpt.bar_distribution, *pfn_predict(ckpt.model, x, y, 8, ensemble=one),
                                     y[:, 8:]).mean()))
    assert members[0] == pytest.approx(plain.pfn.nll, abs=1e-5)
    (mixed,) = evaluate(ckpt, dataclasses.replace(base, ensemble_size=3), progress=False, examples=False).cells
    assert mixed.pfn_ensemble_members == 3 and plain.pfn_ensemble_members == 1
    assert mixed.pfn.nll < sum(members) / 3
    assert mixed.references["oracle"].nll == plain.references["oracle"].nll
    # bfloat16 forward passes: another PFN column, close to float32's; the oracle and the bars' floor unchanged
    (fast,) = evaluate(ckpt, dataclasses.replace(base, precision="bfloat16"), progress=False, examples=False).cells
    assert fast.pfn.nll != plain.pfn.nll and fast.pfn.nll == pytest.approx(plain.pfn.nll, abs=0.01)
    assert (fast.references["oracle"].nll, fast.bar_floor) == (plain.references["oracle"].nll, plain.bar_floor)


def test_gaps_are_paired_differences(tiny_checkpoint):
    ckpt = load_checkpoint(tiny_checkpoint)
    config = EvaluateConfig(n_context=(8,), n_features=(2,), n_datasets=3, n_queries=8, marginal_datasets=3,
                            nuts_warmup=30, nuts_samples=30, ml2_datasets=3, ml2_restarts=2, timing_datasets=1)
    seen = []
    (cell,) = evaluate(ckpt, config, progress=False, on_cell=lambda cells: seen.append(len(cells))).cells
    assert seen == [1]
    # on every dataset at once, a gap is the difference of the means
    refs = cell.references
    for name in ("oracle", "marginal", "ml2"):
        if refs[name].failures == 0:
            assert refs[name].gap == pytest.approx(cell.pfn.nll - refs[name].nll), name
    assert refs["marginal"].min_ess > 0 and refs["marginal"].divergences >= 0


def test_oracle_is_the_best_on_average(tiny_checkpoint):
    """The exact posterior with the true hyperparameters beats a barely trained PFN, and with more context
    its NLL falls (a property of the exact GP, checked through the report)."""
    ckpt = load_checkpoint(tiny_checkpoint)
    cells = fidelity_report(ckpt, n_context=(2, 16), n_features=(1,), n_datasets=64, n_queries=16,
                            marginal_datasets=0, ml2_datasets=0, progress=False, path="raw")
    assert all(c.gap("oracle") > 0 for c in cells)
    # the oracle moved onto the bars loses a little (a KL projection: >= 0 up to sampling noise), far less than
    # the barely trained PFN
    assert all(-0.01 < c.bar_floor < 0.5 * c.gap("oracle") for c in cells)
    assert cells[1].references["oracle"].nll < cells[0].references["oracle"].nll
    assert set(cells[0].references) == {"oracle"}
    assert "-oracle" in format_table(cells)
    assert [FidelityCell.from_json(json.loads(json.dumps(c.to_json()))) for c in cells] == cells


def test_coverage_and_crps_of_the_oracle_match_their_definitions(tiny_checkpoint):
    """The oracle GP is calibrated by construction: its central intervals cover their nominal share."""
    ckpt = load_checkpoint(tiny_checkpoint)
    report = evaluate(ckpt, EvaluateConfig(n_context=(8,), n_features=(1,), n_datasets=256, n_queries=16,
                                           marginal_datasets=0, ml2_datasets=0), progress=False, examples=False)
    oracle = report.calibration["oracle"]
    levels = json.loads(json.dumps(report.to_json()))["levels"]
    se = [math.sqrt(c * (1 - c) / (256 * 16)) for c in levels]
    # points of one dataset are correlated: allow 5 binomial standard errors
    assert all(abs(o - c) < 5 * s + 0.01 for o, c, s in zip(oracle, levels, se))


def test_bad_settings_raise(tiny_checkpoint, tmp_path, capsys):
    ckpt = load_checkpoint(tiny_checkpoint)
    with pytest.raises(ValueError, match="n_datasets"):
        EvaluateConfig(n_datasets=0)
    with pytest.raises(ValueError, match="precision must be one of"):
        EvaluateConfig(precision="half")
    with pytest.raises(ValueError, match="max_features"):
        evaluate(ckpt, EvaluateConfig(n_features=(5,)), progress=False)
    with pytest.raises(ValueError, match="trained on"):
        evaluate(ckpt, EvaluateConfig(n_context=(4, 500)), progress=False)
    ckpt.prior = object()
    with pytest.raises(TypeError, match="Prior protocol"):
        evaluate(ckpt, progress=False)
    assert main(["evaluate", str(tiny_checkpoint), "--datasets", "-1", "--out", str(tmp_path)]) == 2
    assert "n_datasets" in capsys.readouterr().err
    assert main(["evaluate", str(tiny_checkpoint), "--context", "4,x", "--out", str(tmp_path)]) == 2


def test_references_are_reused_not_recomputed(tiny_checkpoint, monkeypatch):
    """A second run with the first run's store gives the same cells without running NUTS or ML-II again."""
    import priorfit.evaluate as ev
    from priorfit.exact.store import ReferenceStore

    ckpt = load_checkpoint(tiny_checkpoint)
    config = EvaluateConfig.quick()
    store = ReferenceStore(ev.reference_protocol(ckpt.prior, config))
    first = evaluate(ckpt, config, progress=False, examples=False, references=store)
    assert store.count("marginal", 1, 4) == config.marginal_datasets and store.count("ml2", 1, 16) == config.ml2_datasets

    def fail(*args, **kwargs):
        raise AssertionError("an exact reference was recomputed")

    monkeypatch.setattr(GPMarginal, "predict", fail)
    monkeypatch.setattr(GPMLII, "predict", fail)
    again = ReferenceStore.from_json(json.loads(json.dumps(store.to_json())))
    second = evaluate(ckpt, config, progress=False, examples=False, references=again)
    def drop(cell):  # the PFN and oracle are timed afresh; every other figure must repeat exactly
        data = cell.to_json()
        data["pfn"].pop("ms_per_dataset")
        data["references"]["oracle"].pop("ms_per_dataset")
        return data
    assert [drop(c) for c in second.cells] == [drop(c) for c in first.cells]

    # Without new references, only the datasets the store holds are scored; an empty store gives no columns.
    empty = ReferenceStore(ev.reference_protocol(ckpt.prior, config))
    bare = evaluate(ckpt, config, progress=False, examples=False, references=empty, new_references=False)
    assert all(set(c.references) == {"oracle"} for c in bare.cells)
    more = dataclasses.replace(config, marginal_datasets=config.marginal_datasets + 3)
    partial = evaluate(ckpt, more, progress=False, examples=False, references=again, new_references=False)
    assert [c.references["marginal"].datasets for c in partial.cells] == [config.marginal_datasets] * len(
        partial.cells)


def test_references_of_another_protocol_are_refused(tiny_checkpoint, tmp_path, capsys):
    from priorfit.evaluate import reference_protocol
    from priorfit.exact.store import ReferenceMismatchError, ReferenceStore

    ckpt = load_checkpoint(tiny_checkpoint)
    store = ReferenceStore(reference_protocol(ckpt.prior, EvaluateConfig.quick()))
    with pytest.raises(ReferenceMismatchError, match="nuts_warmup"):
        evaluate(ckpt, dataclasses.replace(EvaluateConfig.quick(), nuts_warmup=7), progress=False, references=store)
    store.save(tmp_path / "refs.json")
    assert main(["evaluate", str(tiny_checkpoint), "--quick", "--nuts-warmup", "7", "--out", str(tmp_path / "o"),
                 "--references", str(tmp_path / "refs.json"), "--quiet", "--no-plots"]) == 2
    assert "--references" in capsys.readouterr().err


def test_gaps_to_references_on_a_subset_are_paired_on_that_subset(tiny_checkpoint):
    """A slow reference that scored only the first k datasets of a cell (here: records put in its store) is
    compared with the PFN on exactly those k: the gap is the mean of per-dataset differences there, not the
    difference of the two means over different datasets."""
    from priorfit.exact.store import ReferenceStore, dataset_fingerprint
    from priorfit.evaluate import reference_protocol

    ckpt = load_checkpoint(tiny_checkpoint)
    config = EvaluateConfig(n_context=(6,), n_features=(1,), n_datasets=8, n_queries=8, marginal_datasets=3,
                            ml2_datasets=0, timing_datasets=1, path="raw")
    batch = ckpt.prior.sample(8, 14, torch.Generator().manual_seed(dataset_seed(config.seed, 1, 6)), n_features=1,
                              n_context=6)
    store = ReferenceStore(reference_protocol(ckpt.prior, config))
    stored = [0.3, -0.2, 1.1]
    for i, nll in enumerate(stored):
        store.put("marginal", 1, 6, i, dict(fingerprint=dataset_fingerprint(batch.x[i], batch.y[i]), nll=nll,
                                            crps=0.1, pit=[0.5] * 8, ms=1.0, max_r_hat=1.0, min_ess=100.0,
                                            divergences=0))
    (cell,) = evaluate(ckpt, config, progress=False, examples=False, references=store, new_references=False).cells
    logits, loc, scale = pfn_predict(ckpt.model, batch.x, batch.y, 6)
    per_dataset = pfn_nll(ckpt.bar_distribution, logits.double(), loc.double(), scale.double(),
                          batch.y[:, 6:]).mean(-1)
    marginal = cell.references["marginal"]
    assert marginal.datasets == 3 and marginal.nll == pytest.approx(sum(stored) / 3)
    assert marginal.gap == pytest.approx(float((per_dataset[:3] - torch.tensor(stored, dtype=torch.float64)).mean()),
                                         abs=1e-6)
    assert marginal.gap != pytest.approx(cell.pfn.nll - marginal.nll, abs=1e-3)  # the unpaired difference
    assert cell.pfn.nll == pytest.approx(float(per_dataset.mean()), abs=1e-6)


def test_the_user_path_feeds_random_units_through_the_estimator(tiny_checkpoint, tiny_invariant_checkpoint):
    """The user path moves every dataset to random units and predicts through PFNRegressor, mapping the
    predictive back with its Jacobian: for a model that sees only its context's units, every PFN figure equals
    the raw path's; for a model trained on raw units it does not (its estimator rescales what it never saw)."""
    from priorfit.evaluate.scoring import UserUnits

    units = UserUnits.draw(4000, 3, torch.Generator().manual_seed(0))
    assert units.a.min() < 1e-3 and units.a.max() > 1e3 and units.c.min() < 1e-3 and units.c.max() > 1e3
    assert ((units.b / units.a).abs().max() > 1e3) and (units.b < 0).any() and (units.b > 0).any()
    base = EvaluateConfig(n_context=(2, 8), n_features=(2,), n_datasets=12, n_queries=8, marginal_datasets=0,
                          ml2_datasets=0, timing_datasets=1)
    for checkpoint, same in ((tiny_invariant_checkpoint, True), (tiny_checkpoint, False)):
        ckpt = load_checkpoint(checkpoint)
        user = evaluate(ckpt, base, progress=False, examples=False)
        raw = evaluate(ckpt, dataclasses.replace(base, path="raw"), progress=False, examples=False)
        assert user.config.path == "user" and raw.config.path == "raw"
        for u, r in zip(user.cells, raw.cells):
            assert u.references["oracle"].nll == r.references["oracle"].nll  # the same datasets
            close = [u.pfn.nll == pytest.approx(r.pfn.nll, abs=1e-5),
                     u.pfn.crps == pytest.approx(r.pfn.crps, rel=1e-5),
                     u.pfn.coverage_90 == pytest.approx(r.pfn.coverage_90, abs=1e-9)]
            assert all(close) if same else not close[0], (checkpoint, u.n_context)
        again = FidelityReport.from_json(json.loads(json.dumps(user.to_json())))
        assert again.config == user.config


def test_a_cell_near_its_target_gets_the_marginal_on_every_dataset(tiny_checkpoint):
    """One rule for every cell: where the gap to the marginal is within two standard errors of its target, the
    marginal runs on all datasets of the cell, else on the first marginal_datasets."""
    ckpt = load_checkpoint(tiny_checkpoint)
    config = EvaluateConfig(n_context=(4,), n_features=(1,), n_datasets=5, n_queries=8, marginal_datasets=2,
                            nuts_warmup=30, nuts_samples=30, ml2_datasets=0, timing_datasets=1, path="raw",
                            gap_targets=((1, 100.0),))
    (far,) = evaluate(ckpt, config, progress=False, examples=False).cells
    assert far.references["marginal"].datasets == 2
    near = dataclasses.replace(config, gap_targets=((1, far.references["marginal"].gap),))
    (cell,) = evaluate(ckpt, near, progress=False, examples=False).cells
    assert cell.references["marginal"].datasets == 5
    assert cell.references["marginal"].gap == pytest.approx(cell.pfn.nll - cell.references["marginal"].nll)
    with pytest.raises(ValueError, match="gap_targets"):
        EvaluateConfig(gap_targets=((0, 0.1),))
    with pytest.raises(ValueError, match="more than one target"):
        EvaluateConfig(gap_targets=((1, 0.05), (1, 0.1)))


def test_an_unconverged_mcmc_run_is_rerun_with_longer_chains():
    """A run whose R-hat exceeds the limit is rerun once with chains RERUN_FACTOR times longer, and the rerun is
    kept; a run that converged, or a reference without chains, is not rerun."""
    from priorfit.evaluate.scoring import _slow_record
    from priorfit.exact.reference import R_HAT_LIMIT, RERUN_FACTOR, ReferenceKind, ReferenceResult, Task
    from priorfit.predictive.normal import NormalPredictive

    calls = []

    @dataclasses.dataclass(frozen=True)
    class Chains:
        num_warmup: int = 10
        num_samples: int = 10
        r_hat: float = 1.5
        name = "marginal"
        label = "fake"
        kind = ReferenceKind.MARGINAL

        def predict(self, task, seed):
            calls.append(self.num_warmup)
            r_hat = self.r_hat if self.num_warmup == 10 else 1.01
            return ReferenceResult(NormalPredictive(torch.zeros(2), torch.ones(2)), max_r_hat=r_hat, min_ess=50.0)

    task = Task(torch.zeros(3, 1), torch.zeros(3), torch.zeros(2, 1))
    record = _slow_record(Chains(), task, torch.zeros(2), 0)
    assert calls == [10, 10 * RERUN_FACTOR] and record.chain_factor == RERUN_FACTOR and record.max_r_hat == 1.01
    assert not record.unconverged
    calls.clear()
    record = _slow_record(Chains(r_hat=R_HAT_LIMIT - 0.01), task, torch.zeros(2), 0)
    assert calls == [10] and record.chain_factor == 1

    @dataclasses.dataclass(frozen=True)
    class FailsWhenLonger(Chains):
        def predict(self, task, seed):
            return super().predict(task, seed) if self.num_warmup == 10 else ReferenceResult(None)

    kept = _slow_record(FailsWhenLonger(), task, torch.zeros(2), 0)  # a failed rerun keeps the first run
    assert not kept.failed and kept.max_r_hat == 1.5 and kept.chain_factor == 1
