"""The layout's promises, checked: each layer imports only what it needs, and only the GP's own modules know
the GP prior."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "priorfit"


def _modules_after(code: str) -> set[str]:
    """The modules loaded after running ``code`` in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
                         capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("code, absent", [
    ("import priorfit.training", {"priorfit.evaluate", "priorfit.estimators", "sklearn", "jax", "gpytorch"}),
    ("import priorfit.estimators", {"priorfit.training", "priorfit.evaluate", "jax", "numpyro", "gpytorch"}),
    ("from priorfit.cli import build_parser; build_parser()",
     {"priorfit.training", "priorfit.estimators", "priorfit.evaluate.scoring", "sklearn", "jax", "gpytorch"}),
    ("import priorfit", {"priorfit.training", "priorfit.estimators", "sklearn"}),
    ("import priorfit.bo", {"priorfit.training", "priorfit.evaluate", "jax", "numpyro", "botorch", "gpytorch"}),
])
def test_a_layer_loads_only_its_own_stack(code, absent) -> None:
    loaded = _modules_after(code)
    assert not (absent & loaded), sorted(absent & loaded)


def test_only_the_gp_modules_ask_for_the_gp_prior() -> None:
    """Training, evaluation, the estimators and the predictives use a prior through its protocol."""
    own = {SRC / "priors" / "gp.py", SRC / "priors" / "invariant.py", SRC / "exact" / "gp.py",
           SRC / "exact" / "marginal.py", SRC / "exact" / "invariant.py",
           SRC / "priors" / "student_t.py", SRC / "exact" / "student_t.py",  # scale mixtures of a GP
           SRC / "priors" / "classification.py"}  # labels from a GP's latent functions
    asking = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
              if p not in own and re.search(r"isinstance\([^)]*GPPrior", p.read_text())]
    assert asking == []
