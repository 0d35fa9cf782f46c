"""Scale configs: the bundled ladder, custom settings, and helpful errors."""

import pytest

import genesys_dsl as g
from genesys_dsl.scales import ConfigError, get_scale, load_config


def test_bundled_scales_are_ordered_smallest_first():
    scales = g.scales()
    assert list(scales)[:3] == ["cpu-xs", "cpu-s", "cpu-m"]
    assert list(scales)[3:] == ["14M", "31M", "70M", "125M", "350M"]
    targets = [s.param_target for s in scales.values()]
    assert targets == sorted(targets)
    assert (scales["14M"].d_model, scales["14M"].n_layers) == (128, 6)
    assert (scales["350M"].d_model, scales["350M"].n_layers) == (1024, 24)


def test_ladders_name_known_scales():
    config = load_config()
    assert config.ladders["cpu"].scales == ["cpu-xs", "cpu-s", "cpu-m"]
    assert config.ladders["genesys"].scales == ["14M", "31M", "70M", "125M", "350M"]
    assert config.ladders["genesys"].selection_ratio == 0.25
    assert [r.tokens_per_param for r in config.ladders["genesys"].rungs] == [50, 40, 30, 20, 20]


def test_rungs_by_name_default_to_the_lowest():
    from genesys_dsl.scales import get_ladder

    ladder = get_ladder("cpu")
    assert ladder.rung().name == "cpu-xs" and ladder.rung("cpu-s").scale == "cpu-s"
    with pytest.raises(ConfigError, match="ladder 'cpu' has no rung 'cpu-x'; did you mean 'cpu-xs'"):
        ladder.rung("cpu-x")
    with pytest.raises(ConfigError, match="unknown ladder 'gpu'.*Known ladders: cpu, genesys"):
        get_ladder("gpu")


def test_a_mapping_is_a_scale():
    scale = get_scale({"d_model": 32, "n_layers": 1, "vocab_size": 16, "context_length": 8})
    assert scale.name == "custom" and scale.d_model == 32


def test_bad_mapping_names_the_setting():
    with pytest.raises(ConfigError, match="d_model"):
        get_scale({"d_model": -1, "n_layers": 1, "vocab_size": 16, "context_length": 8})


@pytest.mark.parametrize("text, message", [
    ("[scales.a]\nd_model = 64\n", "scales.a.n_layers"),
    ("[scales.a]\nd_model = 'wide'\nn_layers=1\nvocab_size=2\ncontext_length=2\nparam_target=1\n",
     "scales.a.d_model"),
    ("[scale.a]\n", "unknown section"),
    ("[scales.a\n", "not valid TOML"),
    ("[scales.a]\nd_model=1\nn_layers=1\nvocab_size=2\ncontext_length=2\nparam_target=1\n"
     "[ladders.l]\nselection_ratio=0.5\n[[ladders.l.rungs]]\nscale='b'\ntokens_per_param=1\nbudget=1\n",
     "unknown scale(s) ['b']"),
])
def test_bad_config_files_name_file_and_key(tmp_path, text, message):
    path = tmp_path / "scales.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    assert message in str(err.value) and str(path) in str(err.value)


def test_missing_config_file():
    with pytest.raises(ConfigError, match="no such scale config"):
        load_config("/nonexistent/scales.toml")
