"""`python -m experiments.sweep_sizes`: runs benchmarks.sweep_sizes (see its docstring for flags)."""

from benchmarks.sweep_sizes import run

if __name__ == "__main__":
    run()
