"""How every program reads its --config and flags: absl's parser, with one-line errors.

    app.run(main, flags_parser=command_line.parse_flags)

A bad flag, an override of a config field that does not exist, or a config file that fails to load
exits with one line "error: ..." instead of a traceback; a config flag may name one of lerpnet's
packaged configs from any folder (`packaged_config`). The config's values are then checked by each
program (lerpnet.config_checks).
"""

from __future__ import annotations

import pathlib
import re
import sys

from absl import flags
from ml_collections.config_flags import config_flags


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else text


def _unknown_override(argv: list[str], error: Exception) -> str:
    """One line for a `--config.a.b=v` override whose field does not exist."""
    text = str(error.args[0] if error.args else error)
    key = re.search(r"'([^'\\]+)", text)
    hint = re.search(r'Did you mean "([^"]+)"', text)
    for arg in argv[1:]:
        match = re.match(r"--(\w+)\.([\w.]+)", arg)
        if match and key and key.group(1) in match.group(2).split("."):
            path = match.group(2).split(".")
            field = ".".join(path[: path.index(key.group(1)) + 1])
            return f"{arg}: unknown config field {field}" + (f" (did you mean {hint.group(1)}?)" if hint else "")
    return f"unknown config field {key.group(1) if key else text}"


PACKAGED_CONFIGS = pathlib.Path(__file__).resolve().parent / "configs"


def packaged_config(value: str) -> str:
    """A config flag's value, `path[:variant]`, with a path that names no file here but names one of
    lerpnet's own configs (`configs/default.py`, `default.py` or `default`) pointed at the packaged
    copy, so the README's commands work from any folder once lerpnet is installed."""
    path, colon, variant = value.partition(":")
    name = pathlib.Path(path).name
    packaged = PACKAGED_CONFIGS / (name if name.endswith(".py") else f"{name}.py")
    if path and not pathlib.Path(path).exists() and packaged.is_file() and name != "__init__.py":
        return f"{packaged}{colon}{variant}"
    return value


def parse_flags(argv: list[str], flag_values: flags.FlagValues = flags.FLAGS) -> list[str]:
    """absl's flag parsing (pass as `app.run(main, flags_parser=parse_flags)`) where a bad flag, an
    override of a field the config lacks, or a config file that fails to load exits with one line
    "error: ..." instead of a traceback; config files are found among the packaged configs too
    (`packaged_config`). Returns the arguments left after the flags."""
    config_flag_names = {name for name in flag_values if config_flags.is_config_flag(flag_values[name])}
    argv = [_with_packaged_config(arg, config_flag_names) for arg in argv]
    try:
        rest = flag_values(argv)
    except flags.Error as e:
        head, *tail = str(e).splitlines()
        if tail:  # a config file that raised: its flag, then the exception's own message
            head = head.split(": Error whilst parsing", 1)[0] + ": " + re.sub(r"^\w+: ", "", _last_line(str(e)))
        sys.exit(f"error: {re.sub(r'^flag ', '', head)}")
    except (AttributeError, KeyError) as e:  # ml_collections: the override names no field
        sys.exit(f"error: {_unknown_override(argv, e)}")
    for name in list(flag_values):
        flag = flag_values[name]
        if config_flags.is_config_flag(flag) and flag.present:
            try:
                flag.value.keys()
            except OSError:
                path = config_flags.get_config_filename(flag)
                where = pathlib.Path(path.split(":", 1)[0])
                problem = ("no such file" if not where.exists() else "not a file" if not where.is_file()
                           else "it cannot be loaded")
                sys.exit(f"error: --{name}={flag.serialize().split('=', 1)[-1]}: {problem} ({path})")
    return rest


def _with_packaged_config(arg: str, names: set[str]) -> str:
    match = re.fullmatch(r"(--?(\w+)=)(.*)", arg)
    return match.group(1) + packaged_config(match.group(3)) if match and match.group(2) in names else arg
