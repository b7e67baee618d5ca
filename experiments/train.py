"""`python -m experiments.train`: runs lerpnet.programs.train (see its docstring for flags)."""

from lerpnet.programs.train import run

if __name__ == "__main__":
    run()
