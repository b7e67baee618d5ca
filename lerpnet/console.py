"""What a program prints: its own log lines (not the checkpoint library's narration), kept clear of
progress bars, and at the end where its outputs are.

Every absl main calls `start(argv)` (or `setup_logging()`) first, does its work inside
`one_line_errors(...)`, and calls `print_outputs(...)` last.
"""

from __future__ import annotations

import contextlib
import logging as pylogging
import pathlib
import sys
from collections.abc import Iterator, Mapping

import jax
from absl import logging
from tqdm import tqdm


def drop_library_info(record: pylogging.LogRecord) -> bool:
    """False for the INFO lines of orbax (about 25 per checkpoint read or write, logged through
    absl, so known by their file) and of jax (backend probing, compilation cache); warnings pass.

    absl's handler sees Python records, so the level compares with Python's WARNING (30), not
    absl's `logging.WARNING` (-1, a verbosity), which every record is above.
    """
    library = "/orbax/" in record.pathname or record.name.split(".")[0] in ("jax", "jaxlib")
    return record.levelno >= pylogging.WARNING or not library


class _ProgressSafeStream:
    """A stream that writes through `tqdm.write`, which lifts any progress bar off the line first."""

    def write(self, text: str) -> None:
        tqdm.write(text, file=sys.stderr, end="")

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()

    def close(self) -> None:  # standard error stays open
        pass


def setup_logging() -> None:
    """INFO logging through absl's handler, without orbax's and jax's INFO, written around progress bars.

    (tqdm's `logging_redirect_tqdm` does not apply: absl's handler is not a StreamHandler.)
    """
    logging.set_verbosity(logging.INFO)
    logging.use_absl_handler()
    handler = logging.get_absl_handler().python_handler
    if drop_library_info not in handler.filters:
        handler.addFilter(drop_library_info)
    handler.setStream(_ProgressSafeStream())


def print_outputs(outputs: Mapping[str, str | pathlib.Path]) -> None:
    """'outputs:' and one line per output that exists, 'what  path', on standard output."""
    present = {what: pathlib.Path(path) for what, path in outputs.items() if pathlib.Path(path).exists()}
    width = max((len(what) for what in present), default=0)
    lines = [f"  {what:<{width}}  {path}{'/' if path.is_dir() else ''}" for what, path in present.items()]
    tqdm.write("\n".join(["outputs:", *lines]), file=sys.stdout)


def start(argv: list[str], hint: str = "every setting is a --flag or --config.<field>") -> None:
    """A main's first call: refuse arguments left after the flags (one line, with `hint`), then set up logging."""
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {argv[1:]} ({hint})")
    setup_logging()


@contextlib.contextmanager
def one_line_errors(errors: tuple[type[Exception], ...], interrupted: str = "interrupted") -> Iterator[None]:
    """Inside a main: an exception of `errors` (bad input, a diverged run) is logged and exits with one line
    "error: ...", not a traceback; Ctrl-C exits with `interrupted` (say how to resume)."""
    try:
        yield
    except errors as e:
        logging.error("%s", e)
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        # Work still queued on the device would be torn down under the exiting interpreter (an abort
        # after the message): let it finish first, then leave.
        jax.block_until_ready(jax.live_arrays())
        sys.exit(interrupted)
