"""Config checks for every program: a mistake is one line naming the field, found before any work.

    check_config(config, reference, rules)   unknown, missing or wrongly typed fields (against the
                                             program's default config), then each field's rule
    changed_fields(stored, new, harmless)    what a new config changes against a stored one (resume)

The command line's mistakes (flags, overrides, config files) are lerpnet.command_line's.

A rule takes a field's value and returns what is wrong with it, or None; `integer`, `number`,
`one_of`, `each` and `device_count` build the usual ones, e.g.
`{"train.batch_size": integer(1), "train.learning_rate": number(0, low_open=True)}`;
TRAINING_RULES are lerpnet.train's, and each program keeps its own beside its default config.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax
import ml_collections

from lerpnet import losses, models
from lerpnet.data.datasets import SOURCES

Rule = Callable[[Any], "str | None"]


class ConfigError(ValueError):
    """A config field that is unknown, missing, of the wrong type or out of range; the message names it."""


def integer(low: int | None = None, high: int | None = None) -> Rule:
    """A whole number (not a bool) in [low, high]; either bound may be None."""
    if low is not None and high is not None:
        want = f"must be an integer in {low}..{high}"
    else:
        want = "must be an integer" + (f" >= {low}" if low is not None else f" <= {high}" if high is not None else "")

    def rule(value):
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok and (low is None or value >= low) and (high is None or value <= high) else want

    return rule


def number(low: float | None = None, high: float | None = None, *, low_open: bool = False,
           high_open: bool = False) -> Rule:
    """A finite number (int or float, not a bool) in the range; `*_open` excludes that bound."""
    if low is not None and high is not None:
        want = f"must be a finite number in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    elif low is not None:
        want = f"must be a finite number {'>' if low_open else '>='} {low}"
    else:
        want = "must be a finite number" + (f" {'<' if high_open else '<='} {high}" if high is not None else "")

    def rule(value):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return want
        if low is not None and (value <= low if low_open else value < low):
            return want
        if high is not None and (value >= high if high_open else value > high):
            return want
        return None

    return rule


def one_of(choices: Iterable[Any]) -> Rule:
    choices = tuple(choices)

    def rule(value):
        return None if value in choices else f"must be one of {', '.join(map(repr, choices))}"

    return rule


def each(item: Rule, min_length: int = 1) -> Rule:
    """A tuple or list of at least `min_length` items, each passing `item`."""

    def rule(value):
        if not isinstance(value, tuple | list) or len(value) < min_length:
            return f"must be a list of at least {min_length} item(s)"
        problems = [p for p in map(item, value) if p]
        return f"each item {problems[0]}" if problems else None

    return rule


def device_count() -> Rule:
    """0 (every local device) up to the number of local devices."""

    def rule(value):
        available = jax.local_device_count()
        return integer(0, available)(value) and f"must be 0 (all) or 1..{available}, the local device count"

    return rule


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a bool"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, tuple | list):
        return "a list"
    return type(value).__name__


def _same_kind(value: Any, reference: Any) -> bool:
    if reference is None or value is None:
        return True
    if isinstance(reference, float) and isinstance(value, int) and not isinstance(value, bool):
        return True
    return _kind(value) == _kind(reference)


def _is_group(value: Any) -> bool:
    return isinstance(value, Mapping | ml_collections.ConfigDict)


def _check_fields(config: Mapping, reference: Mapping, prefix: str) -> None:
    where = prefix.rstrip(".") or "the config"
    for key in config:
        if key not in reference:
            raise ConfigError(f"unknown config field {prefix}{key} ({where} has: {', '.join(sorted(reference))})")
    for key, ref in reference.items():
        if key not in config:
            raise ConfigError(f"config field {prefix}{key} is missing (the program's default config has it)")
        value = config[key]
        if _is_group(ref) != _is_group(value):
            raise ConfigError(f"config field {prefix}{key}={value!r} must be "
                              f"{'a group of fields' if _is_group(ref) else _kind(ref)}")
        if _is_group(ref):
            _check_fields(value, ref, f"{prefix}{key}.")
        elif not _same_kind(value, ref):
            raise ConfigError(f"config field {prefix}{key}={value!r} must be {_kind(ref)}, like its default {ref!r}")


def _get(config: Mapping, field: str) -> Any:
    for key in field.split("."):
        config = config[key]
    return config


def check_config(config: ml_collections.ConfigDict, reference: ml_collections.ConfigDict,
                 rules: Mapping[str, Rule]) -> None:
    """Raise ConfigError (one line naming the field) for the first unknown, missing or wrongly typed
    field of `config` against `reference`, then for the first field whose rule fails."""
    _check_fields(config, reference, "")
    known = flatten(reference)
    for field, rule in rules.items():
        if field not in known:  # a rule for a field this program's config lacks (tests keep them in step)
            continue
        value = _get(config, field)
        problem = rule(value)
        if problem:
            raise ConfigError(f"config field {field}={value!r} {problem}")


_FRACTION = number(0.0, 1.0)
# lerpnet.train's config: ranges and choices (types and unknown fields come from its default config;
# train.optimizer and train.schedule are checked by building the optimizer).
TRAINING_RULES: dict[str, Rule] = {
    "seed": integer(0),
    "data.source": one_of(SOURCES),
    "data.num_shapes": integer(0),
    "data.seed": integer(0),
    "data.val_fraction": number(0.0, 1.0, low_open=True, high_open=True),
    "data.rotations": one_of(("canonical", "all")),
    "data.up_axis": one_of(("", "y", "z")),
    "model.encoder_features": each(integer(1)),
    "model.decoder_features": each(integer(1), min_length=2),
    "model.latent_features": integer(1),
    "model.kernel_size": integer(1),
    "model.activation": one_of(models.ACTIVATIONS),
    "model.norm": one_of(models.NORMS),
    "model.implementation": one_of(models.IMPLEMENTATIONS),
    "model.dtype": one_of(("float32", "bfloat16", "float16")),
    "model.encoder_blocks": integer(0),
    "model.encoder_dropout": number(0.0, 1.0, high_open=True),
    "loss.name": one_of(losses.LOSSES),
    "loss.pos_weight": number(0.0, low_open=True),
    "loss.focal_gamma": number(0.0),
    "loss.focal_alpha": _FRACTION,
    "loss.overlap_weight": number(0.0),
    "loss.tversky_alpha": number(0.0),
    "loss.tversky_beta": number(0.0),
    "loss.distance_scale": number(0.0),
    "augment.mirror_axis": one_of((-1, 0, 1, 2)),
    "augment.max_shift": integer(0, 15),
    "augment.erase_prob": _FRACTION,
    "augment.erase_size": integer(1, 32),
    "acai.weight": number(0.0),
    "acai.gamma": _FRACTION,
    "acai.critic_features": each(integer(1)),
    "morph.weight": number(0.0),
    "pace.weight": number(0.0),
    "pace.pairs": integer(1),
    "pace.points": integer(1),
    "pace.sharpness": number(0.0, low_open=True),
    "pieces.weight": number(0.0),
    "pieces.threshold": number(0.0, 1.0, low_open=True, high_open=True),
    "train.batch_size": integer(1),
    "train.num_steps": integer(1),
    "train.learning_rate": number(0.0, low_open=True),
    "train.warmup_steps": integer(0),
    "train.weight_decay": number(0.0),
    "train.grad_clip": number(0.0),
    "train.ema_decay": number(0.0, 1.0, high_open=True),
    "train.latent_noise": number(0.0),
    "train.log_every": integer(1),
    "train.eval_every": integer(1),
    "train.checkpoint_every": integer(1),
    "train.max_checkpoints": integer(1),
    "train.eval_batch_size": integer(1),
    "train.num_reconstructions": integer(1),
}


def flatten(config: ml_collections.ConfigDict | Mapping) -> dict[str, Any]:
    """{"train.batch_size": 32, ...} with JSON values (tuples become lists), for comparing configs."""
    tree = json.loads(config.to_json_best_effort()) if isinstance(config, ml_collections.ConfigDict) else config
    out = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update({f"{key}.{k}": v for k, v in flatten(value).items()})
        else:
            out[key] = value
    return out


def changed_fields(stored: Mapping, new: ml_collections.ConfigDict, harmless: Iterable[str] = ()) -> dict:
    """{field: (stored value, new value)} for every field that differs, except the `harmless` ones;
    a field only one side has shows "absent" on the other."""
    old, now, harmless = flatten(stored), flatten(new), set(harmless)
    return {k: (old.get(k, "absent"), now.get(k, "absent")) for k in sorted(old.keys() | now.keys())
            if k not in harmless and old.get(k, "absent") != now.get(k, "absent")}
