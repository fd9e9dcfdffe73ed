"""The metric registry (perfgate/metrics.py): every metric is complete, every table column and A/B name is one of
them, unknown names behave as before the registry, and docs/method.md holds its table as generated. CPU only, no
model: `pytest tests/test_metrics.py`."""

import fnmatch
import subprocess
import sys

import pytest

from perfgate import ab, gate, metrics, paths, table

START = "<!-- metrics table: the output of `python -m perfgate.metrics` -->"
END = "<!-- end of metrics table -->"


def test_every_metric_has_a_unit_a_direction_and_a_meaning():
    for name, m in metrics.REGISTRY.items():
        assert m.name == name
        assert m.unit, name
        assert m.better in (metrics.HIGHER, metrics.LOWER, metrics.SAME), name
        assert m.meaning and "\n" not in m.meaning, name
        assert not m.gated or (m.tolerance is not None and 0 <= m.tolerance < 1), name
        assert m.slack >= 0, name


def test_a_name_carries_its_unit():
    """Where a name's suffix says a unit (`_mib`, `_tok_per_s`, ...), the registry's is that unit."""
    for name, m in metrics.REGISTRY.items():
        said = next((unit for suffix, unit in metrics.UNIT_SUFFIXES if name.endswith(suffix)), None)
        assert said in (None, m.unit), name


def test_every_table_column_is_a_metric_with_a_header():
    groups = (
        table.DECODE_COLUMNS,
        table.DEVICE_COLUMNS,
        table.LOAD_COLUMNS,
        table.FIDELITY_COLUMNS,
        table.AGENT_COLUMNS,
        table.LIVE_COLUMNS,
    )
    for name in (name for group in groups for name in group):
        assert name in metrics.REGISTRY, name
        assert metrics.REGISTRY[name].header, name


def test_the_ab_names_are_metrics():
    for name in (*ab.RATIOS, *ab.COUNTS):
        assert metrics.REGISTRY[name].gated
    for name in ab.COUNTS:
        assert metrics.REGISTRY[name].better == metrics.SAME
    for pattern in ab.GATED:  # each pattern gates at least one gated metric
        assert any(fnmatch.fnmatchcase(m.name, pattern) and m.gated for m in metrics.REGISTRY.values()), pattern


def test_an_unknown_name_is_a_clear_error():
    with pytest.raises(metrics.UnknownMetric, match="unknown metric 'decode_tok_per_min'.*perfgate.metrics.REGISTRY"):
        metrics.metric("decode_tok_per_min")
    assert metrics.metric("ttft_s").unit == "s"


def test_defaults_come_from_the_registry_and_unknown_names_fall_back_to_patterns():
    for name, m in metrics.REGISTRY.items():
        if m.tolerance is not None:
            assert gate.tolerance_for(name, {}) == m.tolerance
        assert gate.slack_for(name) == m.slack
    assert gate.tolerance_for("kl_nats", {}) == 0.50 and gate.slack_for("kl_nats") == 1e-3
    assert gate.tolerance_for("peak_vram_device_mib", {}) == 0.05  # report-only: the *vram* rule, as before
    # names of an older perfgate's baseline entries
    assert gate.tolerance_for("agent_query_p99_s", {}) == 0.45
    assert gate.tolerance_for("old_vram_gib", {}) == 0.05
    assert gate.tolerance_for("old_figure", {}) == 0.10 and gate.slack_for("old_figure") == 0.0
    assert gate.tolerance_for("old_figure", {"old_*": 0.2}, stored=0.3) == 0.2


def test_expected_unit_from_the_registry_else_from_the_name():
    assert metrics.expected_unit("energy_j_per_token") == "J/token"
    assert metrics.expected_unit("perplexity") == "ppl"
    assert metrics.expected_unit("old_tok_per_s") == "tok/s"
    assert metrics.expected_unit("old_figure") is None


def test_the_docs_hold_the_generated_table():
    printed = subprocess.run(
        [sys.executable, "-m", "perfgate.metrics"], capture_output=True, text=True, check=True, cwd=paths.REPO_ROOT
    ).stdout
    assert printed == metrics.docs_table() + "\n"
    text = (paths.REPO_ROOT / "docs" / "method.md").read_text(encoding="utf-8")
    assert text.count(START) == 1 and text.count(END) == 1
    held = text.split(START, 1)[1].split(END, 1)[0].strip("\n")
    assert held == metrics.docs_table(), "docs/method.md's metrics table is stale: paste `python -m perfgate.metrics`"
