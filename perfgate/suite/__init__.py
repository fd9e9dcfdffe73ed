"""perfgate's built-in perf tests (load, decode, fidelity), collected by `pytest --perf` in any repository."""
