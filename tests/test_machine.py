"""What the controller learns of the machine without importing torch (1.6 s of CPU a run on the 2-core machine)."""

import subprocess
import sys

import pytest

from perfgate import machine


def fresh(code: str) -> str:
    """`code` run in a fresh interpreter; its stdout."""
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip()


def test_torchs_cuda_version_is_read_without_importing_torch():
    out = fresh(
        "import sys; from perfgate import machine; v = machine.torch_cuda(); imported = 'torch' in sys.modules; "
        "import torch; print(imported, v == torch.version.cuda)"
    )
    assert out == "False True"


def test_auto_finds_the_cpu_without_importing_torch_where_no_driver_is():
    if machine.may_have_cuda():
        pytest.skip("a GPU driver is here: torch decides")
    code = "import sys; from perfgate import session; print(session.detect_device('auto'), 'torch' in sys.modules)"
    out = fresh(code)
    assert out == "cpu False"


def test_hidden_gpus_mean_no_cuda(monkeypatch):
    for hidden in ("", "-1"):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
        assert not machine.may_have_cuda()


def test_host_memory_says_its_numa_nodes_and_huge_page_mode(tmp_path):
    assert machine.host_memory(tmp_path) == {"numa_nodes": None, "transparent_hugepages": None}  # says nothing
    for node in ("node0", "node1"):
        (tmp_path / "devices" / "system" / "node" / node).mkdir(parents=True)
    (tmp_path / "devices" / "system" / "node" / "possible").write_text("0-1\n")  # not a node
    thp = tmp_path / "kernel" / "mm" / "transparent_hugepage"
    thp.mkdir(parents=True)
    (thp / "enabled").write_text("always [madvise] never\n")
    assert machine.host_memory(tmp_path) == {"numa_nodes": 2, "transparent_hugepages": "madvise"}
