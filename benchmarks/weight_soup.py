"""Average the weights of several trained PFNs that share an architecture into one model (a uniform "model soup").

  python benchmarks/weight_soup.py runs/classifier_tabular_wide runs/classifier_tabular_wide_seed5 \
      --out runs/classifier_tabular_soup_wide

Stages fine-tuned from the same weights stay in one basin of the loss, where the mean of their weights predicts
about as well as the mean of their predictions (Wortsman et al., 2022, "Model soups") at the cost of one network.
Two seeds of one stage differ by about as much as the stages the recent rules decided between
(docs/classification.md), so averaging them cancels some of that noise without a second forward pass.

The members must have the same network configuration, bar borders (a regressor's) and prior symmetries (the symmetry
ensemble reads them), and differ in their weights. The soup keeps the first member's prior and training
configuration, not its run's step, history or time. Its
``metadata["soup"]`` lists every member: its file, its weights' sha256, its training seed and steps, and its prior
where that differs from the one kept. The output is an ordinary checkpoint: ``PFNClassifier(model=OUT)`` and every
benchmark read it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from priorfit.checkpoint import load_checkpoint, save_checkpoint
from priorfit.config import to_dict
from priorfit.exceptions import CheckpointError
from priorfit.principal_axes import trained_on_principal_axes


def member_file(path: str) -> Path:
    """A run folder's model.safetensors, or the file itself."""
    p = Path(path)
    return p / "model.safetensors" if p.is_dir() else p


def soup(paths: list[str], out: str) -> Path:
    """Write the uniform average of the members' weights to OUT/model.safetensors; returns the file written."""
    if len(paths) < 2:
        raise ValueError(f"members: a soup needs at least two checkpoints, got {len(paths)}")
    files = [member_file(p) for p in paths]
    if len(set(files)) != len(files):
        raise ValueError("members: the same checkpoint is named twice")
    if Path(out).resolve() in {f.parent.resolve() for f in files}:
        raise ValueError(f"--out: {out} holds a member; the soup would overwrite it")
    members = [load_checkpoint(f) for f in files]
    digests = [m.weights_sha256() for m in members]
    if len(set(digests)) != len(digests):
        raise ValueError("members: two of them hold the same weights")
    first = members[0]
    for f, m in zip(files[1:], members[1:]):
        if to_dict(m.model_config) != to_dict(first.model_config):
            raise ValueError(f"members: {f} has another network configuration than {files[0]}")
        if (m.bar_distribution is None) != (first.bar_distribution is None) or (
                m.bar_distribution is not None
                and not torch.equal(m.bar_distribution.borders, first.bar_distribution.borders)):
            raise ValueError(f"members: {f} has other bar borders than {files[0]}")
        if m.prior.symmetries != first.prior.symmetries:
            raise ValueError(f"members: {f}'s prior has other symmetries than {files[0]}'s "
                             f"({m.prior.symmetries} against {first.prior.symmetries})")
        if trained_on_principal_axes(m) != trained_on_principal_axes(first):
            raise ValueError(f"members: one of {f} and {files[0]} was trained on the principal-axes view and the "
                             "other not (the soup would serve the first member's choice for both)")
    states = [m.model.state_dict() for m in members]
    averaged = {}
    for name, value in states[0].items():
        if not value.is_floating_point():
            if any(not torch.equal(s[name], value) for s in states[1:]):
                raise ValueError(f"members: the integer buffer {name!r} differs between members")
            averaged[name] = value
            continue
        total = sum(s[name].to(torch.float64) for s in states)
        averaged[name] = (total / len(states)).to(value.dtype)

    kept_prior = to_dict(first.prior)
    listed = []
    for f, m, digest in zip(files, members, digests):
        training = m.metadata.get("train_config") or {}
        entry = dict(file=str(f), weights_sha256=digest, seed=training.get("seed"),
                     steps=m.metadata.get("step"))
        if to_dict(m.prior) != kept_prior:
            entry["prior"] = to_dict(m.prior)
        listed.append(entry)
    first.model.load_state_dict(averaged)  # after the members' digests: the first member's model becomes the soup
    # The first member's run (its step, history, time, start) is not the soup's: only its training setting is kept.
    metadata = {k: v for k, v in first.metadata.items() if k in ("train_config", "world_size")}
    metadata["soup"] = dict(kind="uniform", members=listed)
    target = Path(out) / "model.safetensors"
    target.parent.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(target, first.model, first.bar_distribution, first.prior, metadata)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("members", nargs="+", help="run folders or checkpoint files, all of one architecture")
    parser.add_argument("--out", required=True, help="folder for the soup's model.safetensors")
    args = parser.parse_args(argv)
    try:
        written = soup(args.members, args.out)
    except (ValueError, CheckpointError) as exc:
        print(f"weight_soup.py: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {written}: the mean of {len(args.members)} members' weights")
    return 0


if __name__ == "__main__":
    sys.exit(main())
