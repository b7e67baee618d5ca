"""Train the voxel autoencoder: python -m experiments.train --config=configs/default.py --workdir=runs/default

Rerunning on the same workdir resumes from its latest checkpoint. Override any config field with
--config.<field>=<value>, e.g. --config.train.num_steps=200; pick a config's variant after a colon,
e.g. --config=configs/modelnet_chairs.py:smoke.
"""

import pathlib

from absl import app, flags
from ml_collections import config_flags

from lerpnet import command_line, console, train

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file (configs/*.py[:variant]).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Experiment directory: config, metrics, checkpoints, pictures.")
_RESUME_WITH_CHANGES = flags.DEFINE_bool(
    "resume_with_changes", False, "Resume the run in --workdir although the config changes what it trains "
    "(e.g. more steps; the schedule is then the new config's). Without it such a resume is refused.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    console.start(argv)
    with console.one_line_errors((train.NonFiniteLossError, ValueError, OSError),  # bad input or a diverged run
                                 f"interrupted: rerun the same command to resume from the latest checkpoint in "
                                 f"{_WORKDIR.value}"):
        train.train_and_evaluate(_CONFIG.value, _WORKDIR.value, resume_with_changes=_RESUME_WITH_CHANGES.value)
    workdir = pathlib.Path(_WORKDIR.value)
    console.print_outputs({"checkpoints": workdir / "checkpoints", "metrics": workdir / "metrics.jsonl",
                           "curves": workdir / "curves.png", "reconstructions": workdir / "reconstructions",
                           "tensorboard": workdir / "tensorboard", "config": workdir / "config.json"})


def run():
    """Console-script entry point."""
    app.run(main, flags_parser=command_line.parse_flags)


if __name__ == "__main__":
    run()
