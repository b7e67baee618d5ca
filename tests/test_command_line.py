"""Command-line mistakes (flags, overrides, config files) exit with one line, not a traceback."""

import pathlib
import sys

import pytest
from absl import flags
from ml_collections import config_flags

from lerpnet import command_line

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def config_flag_values(tmp_path):
    """A private flag set with a config flag, as the programs define theirs."""
    values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "config", flag_values=values, lock_config=True)
    flags.DEFINE_string("workdir", None, "workdir", flag_values=values)
    return values


@pytest.mark.parametrize("args, message", [
    (["--config=configs/default.py:smoke", "--config.train.foo=1"],
     "error: --config.train.foo=1: unknown config field train.foo"),
    (["--config=configs/default.py:smoke", "--config.trian.batch_size=3"],
     "error: --config.trian.batch_size=3: unknown config field trian (did you mean train?)"),
    (["--config=configs/default.py:smoke", "--config.train.batch_size=abc"],
     "error: --config.train.batch_size=abc: invalid literal for int()"),
    (["--config=configs/default.py:bogus"],
     "error: --config=configs/default.py:bogus: unknown variant 'bogus' of configs/default.py"),
    (["--config=configs/nope.py"], "error: --config=configs/nope.py: no such file (configs/nope.py)"),
    (["--config=configs/default.py", "--nosuchflag=1"], "error: Unknown command line flag 'nosuchflag'"),
])
def test_flag_mistakes_exit_with_one_line(config_flag_values, args, message, monkeypatch):
    monkeypatch.chdir(ROOT)
    argv = ["lerpnet-train", *args, "--workdir=x"]
    monkeypatch.setattr(sys, "argv", argv)  # ml_collections finds the overrides in sys.argv
    with pytest.raises(SystemExit) as exit_:
        command_line.parse_flags(argv, config_flag_values)
    assert str(exit_.value.code).startswith(message) and "\n" not in str(exit_.value.code)


def test_good_flags_parse(config_flag_values, monkeypatch):
    monkeypatch.chdir(ROOT)
    argv = ["lerpnet-train", "--config=configs/default.py:smoke", "--config.train.batch_size=8", "--workdir=x",
            "a.binvox"]
    monkeypatch.setattr(sys, "argv", argv)
    rest = command_line.parse_flags(argv, config_flag_values)
    assert rest == ["lerpnet-train", "a.binvox"] and config_flag_values.config.train.batch_size == 8
