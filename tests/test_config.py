import json

import pytest

from priorfit.config import from_dict, load_json, to_dict
from priorfit.exceptions import ConfigError
from priorfit.model.transformer import ModelConfig
from priorfit.training import TrainConfig

from conftest import tiny_prior


def test_round_trip_of_nested_configs():
    for obj in (tiny_prior(), ModelConfig(d_model=64), TrainConfig(eval_context=(2, 4))):
        data = json.loads(json.dumps(to_dict(obj)))
        assert from_dict(data) == obj


def test_unknown_field_is_named():
    data = to_dict(ModelConfig())
    data["d_modle"] = 3
    with pytest.raises(ConfigError, match="d_modle"):
        from_dict(data)


def test_unknown_type_and_wrong_type():
    with pytest.raises(ConfigError, match="Nope"):
        from_dict({"type": "Nope"})
    with pytest.raises(ConfigError, match="expected a TrainConfig"):
        from_dict(to_dict(ModelConfig()), expected=TrainConfig)


def test_invalid_value_is_a_config_error():
    data = to_dict(ModelConfig())
    data["n_heads"] = 3
    with pytest.raises(ConfigError, match="n_heads"):
        from_dict(data)


def test_load_json_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_json(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_json(bad)


def test_extends_lays_a_stage_over_the_job_it_continues(tmp_path):
    """A config with "extends" is its parent with the stated keys replaced (objects merged key by key); a cycle
    or a missing parent is a ConfigError naming the file."""
    import json

    from priorfit.config import load_json, read_config_json
    from priorfit.exceptions import ConfigError
    from priorfit.training import TrainJob

    from pathlib import Path

    base = read_config_json(Path(__file__).resolve().parents[1] / "configs" / "gp_default.json")
    (tmp_path / "base.json").write_text(json.dumps(base))
    (tmp_path / "stage.json").write_text(json.dumps({"extends": "base.json", "training": {"lr": 0.25, "steps": 7}}))
    stage = read_config_json(tmp_path / "stage.json")
    assert stage["training"]["lr"] == 0.25 and stage["training"]["steps"] == 7
    assert stage["training"]["batch_size"] == base["training"]["batch_size"] and stage["prior"] == base["prior"]
    job = load_json(tmp_path / "stage.json", TrainJob)
    assert job.training.lr == 0.25 and job.model == load_json(tmp_path / "base.json", TrainJob).model
    (tmp_path / "a.json").write_text(json.dumps({"extends": "b.json"}))
    (tmp_path / "b.json").write_text(json.dumps({"extends": "a.json"}))
    with pytest.raises(ConfigError, match="cycle"):
        read_config_json(tmp_path / "a.json")
    (tmp_path / "c.json").write_text(json.dumps({"extends": "missing.json"}))
    with pytest.raises(ConfigError, match="missing.json"):
        read_config_json(tmp_path / "c.json")


def test_every_shipped_training_config_loads():
    from pathlib import Path

    from priorfit.config import load_json
    from priorfit.training import TrainJob

    root = Path(__file__).resolve().parents[1] / "configs"
    for path in sorted(root.glob("*.json")):
        assert isinstance(load_json(path, TrainJob), TrainJob), path.name


def test_every_shipped_config_s_prior_fits_its_model():
    """A config whose prior drew more features or classes than its model takes (an `extends` merge gone wrong,
    say) would fail only when its training resumed, hours later: every config is held to it here."""
    from pathlib import Path

    from priorfit.config import load_json
    from priorfit.training import TrainJob

    for path in sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.json")):
        job = load_json(path, TrainJob)
        assert job.prior.max_features == job.model.max_features, path.name
        if getattr(job.prior, "target_kind", "continuous") == "categorical":
            assert job.model.n_classes >= job.prior.max_classes, path.name
        else:
            assert job.model.n_classes == 0, path.name
