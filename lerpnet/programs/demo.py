"""From nothing to pictures: train on the embedded procedural chairs, then draw every validation pair's path.

    python -m experiments.demo --workdir=runs/demo        # what bin/train runs; lerpnet-demo after install

Trains `configs/default.py` (or --config) into <workdir>/train, then runs Algorithm 1
(`configs/interpolate.py:demo`, or --interpolate_config) on its validation chairs into
<workdir>/interpolate: the figure, the strips and GIFs of the exported paths, the most novel
midpoints and the gallery (index.html). Rerunning resumes both steps; the last lines say where
each output is. A run that reconstructs poorly (validation IoU under 0.3) is drawn with a warning.
"""

import pathlib

from absl import app, flags, logging
from ml_collections import config_flags

from lerpnet import command_line, console, distributed, train
from lerpnet.allpairs.program import interpolate_and_evaluate

_CONFIGS = pathlib.Path(__file__).resolve().parent.parent / "configs"
_TRAIN_CONFIG = config_flags.DEFINE_config_file("config", str(_CONFIGS / "default.py"),
                                                "Training config (default: the packaged configs/default.py).")
_INTERPOLATE_CONFIG = config_flags.DEFINE_config_file(
    "interpolate_config", f"{_CONFIGS / 'interpolate.py'}:demo",
    "Interpolation config (default: the packaged configs/interpolate.py:demo); its checkpoint_dir is set here.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/demo", "Folder for both steps: <workdir>/train, <workdir>/interpolate.")


def main(argv):
    console.start(argv)
    workdir = pathlib.Path(_WORKDIR.value)
    interpolate_config = _INTERPOLATE_CONFIG.value
    interpolate_config.checkpoint_dir = str(workdir / "train")
    with console.one_line_errors((ValueError, FileNotFoundError), f"interrupted: rerun the same command to resume "
                                 f"in {workdir}"):
        distributed.initialize_from_env()  # several processes: see lerpnet.distributed
        train.train_and_evaluate(_TRAIN_CONFIG.value, str(workdir / "train"))
        summary = interpolate_and_evaluate(interpolate_config, workdir / "interpolate")
    if summary is None:
        return  # process 0 of several writes and reports the results
    logging.info("%d paths between %d validation shapes: median smoothness %.3f, median novelty IoU %.3f",
                 summary["num_pairs"], summary["num_shapes"], summary["median_smoothness"],
                 summary["median_novelty_iou"])
    console.print_outputs({"training run": workdir / "train", **summary["outputs"]})


def run():
    """Console-script entry point."""
    app.run(main, flags_parser=command_line.parse_flags)


if __name__ == "__main__":
    run()
