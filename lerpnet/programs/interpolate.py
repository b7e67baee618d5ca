"""Decode, score and show every pair's interpolation path of a trained run (the study's Algorithm 1).

    python -m experiments.interpolate --config=configs/interpolate.py --workdir=DIR \\
        --config.checkpoint_dir=TRAINED_RUN [voxel files ...]

Voxel files after the flags are interpolated instead of the run's dataset. Rerunning on the same
DIR resumes: finished blocks are kept. See configs/interpolate.py for the variants.
"""

from absl import app, flags, logging
from ml_collections import config_flags

from lerpnet import command_line, console, distributed
from lerpnet.allpairs.program import interpolate_and_evaluate
from lerpnet.timing import process_seconds

_CONFIG = config_flags.DEFINE_config_file("config", None, "Interpolation config (configs/interpolate.py[:variant]).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for the results (and the resumable blocks).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    console.setup_logging()  # the arguments after the flags are the files to interpolate
    startup = process_seconds()
    with console.one_line_errors((ValueError, FileNotFoundError), "interrupted: rerun to resume"):  # blocks are kept
        distributed.initialize_from_env()  # several processes: see lerpnet.distributed
        summary = interpolate_and_evaluate(_CONFIG.value, _WORKDIR.value, files=tuple(argv[1:]))
    if summary is None:
        return  # process 0 of several writes and reports the results
    logging.info("%d paths between %d shapes, %d decoded shapes in %.1f s; median smoothness %.3f, median "
                 "novelty IoU %.3f", summary["num_pairs"], summary["num_shapes"], summary["decoded_shapes"],
                 summary["wall_seconds"], summary["median_smoothness"], summary["median_novelty_iou"])
    whole = process_seconds()
    if whole is not None:  # what the summary's laps (its wall_seconds) leave out: start-up, gallery
        logging.info("whole process %.1f s: start-up (interpreter, imports, flags) %.1f s, the steps %.1f s, the "
                     "rest (summary, gallery) %.1f s", whole, startup, summary["wall_seconds"],
                     whole - startup - summary["wall_seconds"])
    console.print_outputs(summary["outputs"])


def run():
    """Console-script entry point."""
    app.run(main, flags_parser=command_line.parse_flags)


if __name__ == "__main__":
    run()
