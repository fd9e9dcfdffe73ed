"""perfgate's built-in test_decode (perfgate/suite/test_decode.py), in this repository's reference suite."""

from perfgate.suite.test_decode import test_decode  # noqa: F401
