"""Configuration loading shared by both halves: pydantic coercion, errors, schema."""

import pytest


def test_values_coerce_as_a_user_expects_and_errors_name_key_value_and_type():
    from crack_common.yamlconfig import ConfigError, json_schema
    from edge_app.config import CarConfig, load_car_config
    cfg = load_car_config(None, [{"measure": {"severity_px": [3, 8]}, "gps": {"port": 2947.0},
                                  "drive": {"max_speed": 1}}])
    assert cfg.measure.severity_px == [3.0, 8.0] and isinstance(cfg.measure.severity_px[0],
                                                                float)
    assert cfg.gps.port == 2947 and isinstance(cfg.gps.port, int)
    assert cfg.drive.max_speed == 1.0 and isinstance(cfg.drive.max_speed, float)
    with pytest.raises(ConfigError, match=r"gps.port: expected a whole number, got 2947.5"):
        load_car_config(None, [{"gps": {"port": 2947.5}}])
    with pytest.raises(ConfigError, match=r"measure.severity_px: expected a list of numbers"):
        load_car_config(None, [{"measure": {"severity_px": ["wide", 8]}}])
    with pytest.raises(ConfigError, match=r"did you mean 'inference.threshold'\?"):
        load_car_config(None, [{"inference": {"treshold": 0.4}}])
    schema = json_schema(CarConfig)
    assert "inference" in schema["properties"] and "$defs" in schema
    assert schema["$defs"]["InferenceConfig"]["properties"]["device"]["default"] == "CPU"


def test_config_schema_on_the_command_line(cli):
    import json
    for module in ("edge_app.cli", "distill.cli"):
        r = cli(module, ["config", "--schema"])
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["type"] == "object"
