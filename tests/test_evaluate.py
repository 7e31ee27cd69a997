import math

import pytest

from priorfit.checkpoint import load_checkpoint
from priorfit.evaluate import cells_to_json, fidelity_report, format_table


def test_fidelity_report_cells(tiny_checkpoint):
    ckpt = load_checkpoint(tiny_checkpoint)
    cells = fidelity_report(ckpt, n_context=(2, 8), n_features=(1,), n_datasets=8, n_queries=16, ml2_datasets=2,
                            progress=False)
    assert [(c.n_features, c.n_context) for c in cells] == [(1, 2), (1, 8)]
    for c in cells:
        assert 0 <= c.coverage_50 <= c.coverage_90 <= 1
        assert math.isfinite(c.pfn_nll) and math.isfinite(c.oracle_nll) and math.isfinite(c.ml2_nll)
        assert c.gap_to_oracle == pytest.approx(c.pfn_nll - c.oracle_nll)
    assert "PFN-oracle" in format_table(cells) and len(cells_to_json(cells)) == 2


def test_oracle_is_the_best_on_average(tiny_checkpoint):
    """The exact posterior with the true hyperparameters beats a barely trained PFN, and with more context
    its NLL falls (a property of the exact GP, checked through the report)."""
    ckpt = load_checkpoint(tiny_checkpoint)
    cells = fidelity_report(ckpt, n_context=(2, 16), n_features=(1,), n_datasets=64, n_queries=16, ml2_datasets=0,
                            progress=False)
    assert all(c.gap_to_oracle > 0 for c in cells)
    assert cells[1].oracle_nll < cells[0].oracle_nll
    assert cells[0].ml2_nll is None


def test_rejects_non_gp_priors(tiny_checkpoint):
    ckpt = load_checkpoint(tiny_checkpoint)
    ckpt.prior = object()
    with pytest.raises(TypeError, match="GPPrior"):
        fidelity_report(ckpt, progress=False)
