"""`python -m experiments.show_shapes`: runs lerpnet.programs.show_shapes (see its docstring for flags)."""

from lerpnet.programs.show_shapes import run

if __name__ == "__main__":
    run()
