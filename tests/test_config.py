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
