"""perfgate's built-in test_fidelity (perfgate/suite/test_fidelity.py), in this repository's reference suite."""

from perfgate.suite.test_fidelity import test_fidelity  # noqa: F401
