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


def test_a_key_given_twice_is_refused_with_both_lines(tmp_path):
    from crack_common.yamlconfig import ConfigError, read_yaml
    p = tmp_path / "c.yaml"
    p.write_text("drive:\n  motors: gpio\n  max_speed: 0.5\n  motors: sim\n")
    twice = r"(?s)c.yaml.*'motors' is given twice \(first on line 2\)"
    with pytest.raises(ConfigError, match=twice):
        read_yaml(p)
    p.write_text("a: 1\nb:\n  a: 2\n")  # the same key in two mappings is fine
    assert read_yaml(p) == {"a": 1, "b": {"a": 2}}


@pytest.mark.parametrize("text", ["a: " + "[" * 20000 + "]" * 20000,
                                  "".join(f"{' ' * i}k{i}:\n" for i in range(200)) + " " * 200
                                  + "x: 1\n"])
def test_absurd_nesting_is_named_not_a_recursion_error(tmp_path, text):
    from crack_common.yamlconfig import ConfigError, read_yaml
    p = tmp_path / "deep.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match="deep.yaml: nested"):
        read_yaml(p)


def test_the_schema_describes_each_key_by_its_comment_in_the_example():
    from crack_common.yamlconfig import example_comments, json_schema
    from edge_app.config import EXAMPLE_CONFIG, CarConfig
    text = "a: 1   # first\n     # and more\n\nsec:   # a section\n  b: x  # inner\n  c: 2\n"
    assert example_comments(text) == {"a": "first and more", "sec": "a section",
                                      "sec.b": "inner"}
    schema = json_schema(CarConfig, EXAMPLE_CONFIG.read_text())
    url = schema["$defs"]["SourceConfig"]["properties"]["url"]["description"]
    assert "mjpg-streamer" in url and "picamera" in url  # the continuation line too
    props = [p for d in schema["$defs"].values() for p in d.get("properties", {}).values()]
    assert sum("description" in p for p in props) >= 0.8 * len(props)
    assert "description" not in json_schema(CarConfig)["$defs"]["SourceConfig"][
        "properties"]["url"]
