"""The hooks perfgate declares for the repositories that use it (registered by perfgate.plugin)."""

from __future__ import annotations

import pytest


@pytest.hookspec
def pytest_perfgate_variants(config: pytest.Config) -> list:
    """Variants of one's own (perfgate.variants.Variant) to register beside the built-in ones for this run, e.g. one
    whose `loader` is "mypkg.loading:load", a callable (path, device, max_seq_length) -> (model, tokenizer) that
    the worker process imports (from `import_path`, which defaults to pytest's rootdir). Selected like any other
    variant: by name in --perf-variants, or by default where `default_on` says."""
