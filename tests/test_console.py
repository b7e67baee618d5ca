"""The console: orbax's INFO narration dropped, warnings and the program's own lines kept, log lines
written around progress bars, one-line errors, and the closing list of outputs."""

import logging as pylogging
import pathlib
import subprocess
import sys
import textwrap

import pytest

from lerpnet import console

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _record(level: int, pathname: str, name: str = "absl") -> pylogging.LogRecord:
    return pylogging.LogRecord(name, level, pathname, 1, "message", None, None)


def test_the_filter_drops_orbax_and_jax_info_and_keeps_their_warnings():
    orbax = "/venv/lib/python3.12/site-packages/orbax/checkpoint/_src/checkpointer.py"
    jax = "/venv/lib/python3.12/site-packages/jax/_src/xla_bridge.py"
    assert not console.drop_library_info(_record(pylogging.INFO, orbax))
    assert console.drop_library_info(_record(pylogging.WARNING, orbax))
    assert console.drop_library_info(_record(pylogging.ERROR, orbax))
    assert not console.drop_library_info(_record(pylogging.INFO, jax, "jax._src.xla_bridge"))
    assert console.drop_library_info(_record(pylogging.WARNING, jax, "jax._src.xla_bridge"))
    assert console.drop_library_info(_record(pylogging.INFO, str(ROOT / "lerpnet" / "train.py")))


def test_a_program_logs_around_its_progress_bar_without_orbax_info(tmp_path):
    """A real absl main: an `orbax` module logs through absl while a tqdm bar runs."""
    (tmp_path / "orbax").mkdir()
    (tmp_path / "orbax" / "chatty.py").write_text(textwrap.dedent("""
        from absl import logging
        def narrate():
            logging.info("restoring checkpoint narration")
            logging.warning("orbax warns")
    """))
    (tmp_path / "program.py").write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        import tqdm
        from absl import app, logging
        from lerpnet import console
        write = tqdm.tqdm.write
        tqdm.tqdm.write = classmethod(lambda cls, s, **kw: write("[through tqdm] " + s, **kw))
        def main(argv):
            console.setup_logging()
            from orbax import chatty
            with tqdm.tqdm(total=2, desc="blocks") as bar:
                bar.update(1)
                logging.info("the program's own line")
                chatty.narrate()
                bar.update(1)
            console.print_outputs({{"summary": {str(tmp_path / "program.py")!r}, "absent": "/no/such/file"}})
        app.run(main)
    """))
    done = subprocess.run([sys.executable, str(tmp_path / "program.py")], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "narration" not in done.stderr
    log_lines = [line for line in done.stderr.splitlines() if "the program's own line" in line or "orbax warns" in line]
    assert len(log_lines) == 2 and all("[through tqdm] " in line for line in log_lines), done.stderr
    assert "blocks: 100%" in done.stderr
    assert done.stdout.splitlines()[-2:] == ["[through tqdm] outputs:", f"  summary  {tmp_path / 'program.py'}"]


def test_print_outputs_lists_the_outputs_that_exist(tmp_path, capsys):
    (tmp_path / "blocks").mkdir()
    (tmp_path / "summary.json").write_text("{}")
    console.print_outputs({"summary": tmp_path / "summary.json", "blocks": tmp_path / "blocks",
                           "csv": tmp_path / "pairs.csv"})
    assert capsys.readouterr().out.splitlines() == [
        "outputs:", f"  summary  {tmp_path / 'summary.json'}", f"  blocks   {tmp_path / 'blocks'}/"]


def test_a_main_exits_with_one_line_for_its_errors_and_for_ctrl_c():
    with pytest.raises(SystemExit, match=r"^error: bad field$"):
        with console.one_line_errors((ValueError,)):
            raise ValueError("bad field")
    with pytest.raises(SystemExit, match=r"^interrupted: rerun to resume$"):
        with console.one_line_errors((ValueError,), "interrupted: rerun to resume"):
            raise KeyboardInterrupt
    with pytest.raises(TypeError):  # not bad input: a bug keeps its traceback
        with console.one_line_errors((ValueError,)):
            raise TypeError("a bug")
    with pytest.raises(SystemExit, match=r"^error: unexpected arguments \['x'\] \(files go in --files\)$"):
        console.start(["prog", "x"], "files go in --files")
