"""perfgate's built-in test_load (perfgate/suite/test_load.py), in this repository's reference suite."""

from perfgate.suite.test_load import test_load  # noqa: F401
