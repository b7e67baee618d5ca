"""`pip install .` semantics: one top-level package, configs and programs usable from any folder."""

import importlib.util
import pathlib
import subprocess
import sys
import zipfile

import pytest

from lerpnet import command_line

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_packaged_configs_are_found_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    packaged = command_line.PACKAGED_CONFIGS
    for spelled in ("configs/default.py:smoke", "default.py:smoke", "default:smoke"):
        assert command_line.packaged_config(spelled) == f"{packaged / 'default.py'}:smoke"
    here = tmp_path / "mine.py"
    here.write_text("")
    assert command_line.packaged_config(str(here)) == str(here)  # a file that exists is taken as it is
    assert command_line.packaged_config("configs/nothing.py") == "configs/nothing.py"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)]
    # With setuptools installed here, build with it (no download, so offline machines test too); without it,
    # or if it is older than pyproject's build-system asks, pip fetches the backend from the index.
    built = None
    if importlib.util.find_spec("setuptools"):
        built = subprocess.run([*build, "--no-build-isolation"], capture_output=True, text=True, timeout=600)
    if built is None or built.returncode:
        built = subprocess.run(build, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, f"pip wheel failed:\n{built.stderr[-3000:]}"
    return next(out.glob("lerpnet-*.whl"))


def test_the_wheel_holds_lerpnet_alone_with_its_configs_scripts_and_licence(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names if not n.startswith("lerpnet-")} == {"lerpnet"}
    assert "lerpnet/configs/modelnet_chairs.py" in names and "lerpnet/programs/demo.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    for script in ("lerpnet-train", "lerpnet-interpolate", "lerpnet-demo", "lerpnet-show-shapes"):
        assert script in scripts
    assert any(n.endswith("/LICENSE") for n in names)


def test_installed_outside_the_clone_it_trains_and_interpolates(wheel, tmp_path):
    """A fresh virtual environment with only the wheel installed (its dependencies are taken from this
    process's import path, the clone left out, through a path file, so nothing is downloaded), run
    from a folder that is not the clone, with no PYTHONPATH: the console scripts train and interpolate
    with the packaged configs."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = next((venv / "lib").glob("python3*/site-packages"))
    deps = [p for p in sys.path if p and pathlib.Path(p).is_dir() and pathlib.Path(p).resolve() != ROOT]
    (site / "deps.pth").write_text("".join(f"{p}\n" for p in deps))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    python = venv / "bin" / "python"
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "JAX_PLATFORMS": "cpu"}
    where = subprocess.run([python, "-c", "import lerpnet; print(lerpnet.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True, check=True).stdout
    assert str(site) in where and str(ROOT) not in where
    train = [python, "-m", "lerpnet.programs.train", "--config=configs/default.py:smoke", "--workdir=run"]
    out = subprocess.run(train, cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    interpolate = [python, "-m", "lerpnet.programs.interpolate", "--config=interpolate.py:smoke", "--workdir=paths",
                   "--config.checkpoint_dir=run"]
    out = subprocess.run(interpolate, cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (work / "paths" / "index.html").is_file() and (work / "paths" / "summary.json").is_file()


def test_programs_that_read_runs_start_without_the_training_event_writer():
    """tensorboardX imports PyTorch where that is installed (4 s of a 20 s interpolation command on a
    GPU machine): only a training run writes events, so importing the other programs must not load it."""
    probe = ("import sys; import lerpnet, lerpnet.programs.interpolate, lerpnet.programs.show_shapes; "
             "print(sorted(m for m in ('tensorboardX', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, check=True, capture_output=True, text=True,
                         timeout=300)
    assert out.stdout.strip() == "[]"
