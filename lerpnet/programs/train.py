"""Train the voxel autoencoder: python -m experiments.train --config=configs/default.py --workdir=runs/default

Rerunning on the same workdir resumes from its latest checkpoint. Override any config field with
--config.<field>=<value>, e.g. --config.train.num_steps=200; pick a config's variant after a colon,
e.g. --config=configs/modelnet_chairs.py:smoke.
"""

import logging as pylogging
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from lerpnet import train

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file (configs/*.py[:variant]).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Experiment directory: config, metrics, checkpoints, pictures.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.INFO)
    # orbax narrates every checkpoint at INFO; keep its warnings, drop the rest.
    logging.get_absl_handler().python_handler.addFilter(lambda r: r.levelno >= pylogging.WARNING or "/orbax/" not in r.pathname)
    try:
        train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    except train.NonFiniteLossError as e:
        logging.error("%s", e)
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        sys.exit(f"interrupted: rerun the same command to resume from the latest checkpoint in {_WORKDIR.value}")


def run():
    """Console-script entry point."""
    app.run(main)


if __name__ == "__main__":
    run()
