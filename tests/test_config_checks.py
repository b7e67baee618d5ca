"""Config mistakes are found before any work and reported in one line naming the field."""

import math
import os
import pathlib
import subprocess
import sys

import ml_collections
import pytest

from lerpnet import config_checks, train
from lerpnet.config_checks import ConfigError, check_config
from lerpnet.configs import default as default_config

ROOT = pathlib.Path(__file__).resolve().parents[1]


def smoke(**train_overrides) -> ml_collections.ConfigDict:
    config = default_config.get_config("smoke")
    config.train.update(train_overrides)
    return config


def test_rules_accept_good_values_and_say_what_is_wrong():
    assert config_checks.integer(1)(3) is None
    assert config_checks.integer(1)(0) == "must be an integer >= 1"
    assert config_checks.integer(1)(True) == "must be an integer >= 1"  # a bool is not a count
    assert config_checks.integer(0, 15)(16) == "must be an integer in 0..15"
    positive = config_checks.number(0.0, low_open=True)
    assert positive(1e-3) is None and positive(2) is None
    for bad in (0.0, -1.0, math.nan, math.inf, "0.1", False):
        assert positive(bad) == "must be a finite number > 0.0"
    assert config_checks.number(0.0, 1.0, high_open=True)(1.0) == "must be a finite number in [0.0, 1.0)"
    assert config_checks.one_of(("a", "b"))("c") == "must be one of 'a', 'b'"
    assert config_checks.each(config_checks.integer(1))((4, 0)) == "each item must be an integer >= 1"
    assert config_checks.each(config_checks.integer(1))(()) == "must be a list of at least 1 item(s)"
    devices = config_checks.device_count()
    assert devices(0) is None and devices(1) is None
    assert devices(-1).startswith("must be 0 (all) or 1..") and devices(10**6) is not None


def test_the_default_training_configs_pass_and_every_rule_names_a_field():
    for variant in (None, "smoke"):
        check_config(default_config.get_config(variant), train.default_config(), config_checks.TRAINING_RULES)
    assert set(config_checks.TRAINING_RULES) <= set(config_checks.flatten(train.default_config()))


@pytest.mark.parametrize("field, value, message", [
    ("train.batch_size", 0, "config field train.batch_size=0 must be an integer >= 1"),
    ("train.batch_size", -4, "config field train.batch_size=-4 must be an integer >= 1"),
    ("train.log_every", 0, "config field train.log_every=0 must be an integer >= 1"),
    ("train.eval_every", 0, "config field train.eval_every=0 must be an integer >= 1"),
    ("train.checkpoint_every", 0, "config field train.checkpoint_every=0 must be an integer >= 1"),
    ("train.eval_batch_size", 0, "config field train.eval_batch_size=0 must be an integer >= 1"),
    ("train.learning_rate", math.nan, "config field train.learning_rate=nan must be a finite number > 0.0"),
    ("train.learning_rate", math.inf, "config field train.learning_rate=inf must be a finite number > 0.0"),
    ("data.num_shapes", -1, "config field data.num_shapes=-1 must be an integer >= 0"),
    ("data.source", "modelnet40", "config field data.source='modelnet40' must be one of 'procedural'"),
    ("model.encoder_features", (4, 0), "config field model.encoder_features=(4, 0) each item must be"),
    ("train.num_steps", 2.5, "config field train.num_steps=2.5 must be an integer, like its default"),
])
def test_bad_training_values_are_one_line_naming_the_field(field, value, message):
    config = smoke()
    group, name = field.split(".")
    config[group] = ml_collections.ConfigDict({**config[group].to_dict(), name: value})  # any type, as a file may
    with pytest.raises(ConfigError) as error:
        check_config(config, train.default_config(), config_checks.TRAINING_RULES)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_unknown_and_missing_fields_are_named():
    config = smoke()
    config.train.lerning_rate = 1e-3
    with pytest.raises(ConfigError, match=r"^unknown config field train\.lerning_rate \(train has: batch_size, "):
        check_config(config, train.default_config(), config_checks.TRAINING_RULES)
    config = smoke()
    del config.data.seed
    with pytest.raises(ConfigError, match=r"^config field data\.seed is missing"):
        check_config(config, train.default_config(), {})


def test_training_refuses_a_bad_config_before_any_work(tmp_path):
    workdir = tmp_path / "run"
    with pytest.raises(ConfigError, match="train.learning_rate=nan"):  # a bad learning rate, not "diverged"
        train.train_and_evaluate(smoke(learning_rate=math.nan), str(workdir))
    with pytest.raises(ValueError, match="train.optimizer must be one of"):
        train.train_and_evaluate(smoke(optimizer="lbfgs"), str(workdir))
    assert not workdir.exists()


def test_changed_fields_lists_what_differs_except_the_harmless():
    old, new = smoke(), smoke()
    new.seed, new.train.log_every, new.model.encoder_features = 3, 7, (8, 4)
    stored = config_checks.flatten(old)
    assert config_checks.changed_fields(old, new, harmless=("train.log_every",)) == {
        "seed": (0, 3), "model.encoder_features": ([4, 4], [8, 4])}
    assert config_checks.changed_fields(stored, old) == {}


def test_the_training_program_reports_a_bad_value_in_one_line(tmp_path):
    workdir = tmp_path / "run"
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-m", "experiments.train", "--config=configs/default.py:smoke",
                           f"--workdir={workdir}", "--config.train.eval_every=0"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == "error: config field train.eval_every=0 must be an integer >= 1"
    assert "Traceback" not in done.stderr
    assert not workdir.exists()
