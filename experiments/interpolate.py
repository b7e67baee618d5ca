"""`python -m experiments.interpolate`: runs lerpnet.programs.interpolate (see its docstring for flags)."""

from lerpnet.programs.interpolate import run

if __name__ == "__main__":
    run()
