"""`python -m experiments.demo`: runs lerpnet.programs.demo (see its docstring for flags)."""

from lerpnet.programs.demo import run

if __name__ == "__main__":
    run()
