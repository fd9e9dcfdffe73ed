"""[tool.perfgate]: a repository's own settings and variants, and what a bad entry says."""

import dataclasses
from pathlib import Path

import pytest

from perfgate import project, variants


def write(folder: Path, text: str) -> Path:
    (folder / "pyproject.toml").write_text(text)
    return folder


def test_settings_as_option_text_and_a_declared_variant_inherits_its_base(tmp_path):
    found = project.read(
        write(
            tmp_path,
            '[tool.perfgate]\nmodel = "synthetic:qwen3-tiny"\ncontexts = [128, 1024]\nplots = false\n'
            'tolerances = { decode_tok_per_s = "20%" }\n'
            '[tool.perfgate.variants.my-fp32]\nbase = "hf-fp32"\nloader = "mypkg.loading:load"\n',
        )
    )
    assert found.options == {
        "model": "synthetic:qwen3-tiny",
        "contexts": "128,1024",
        "plots": "false",
        "tolerance": "decode_tok_per_s=20%",
        "variants": "my-fp32",  # declared variants are what a run measures unless `variants` says otherwise
    }
    [mine] = found.variants
    base = variants.REGISTRY["hf-fp32"]
    assert (mine.name, mine.backend, mine.dtype, mine.loader) == (
        "my-fp32",
        "transformers",
        "float32",
        "mypkg.loading:load",
    )
    assert mine.devices == base.devices and mine.default_on == base.devices
    assert mine.import_path == (str(tmp_path),)
    assert variants.Variant.from_spec(mine.spec()) == mine  # what the worker is handed


def test_a_declared_variant_keeps_its_bases_tolerances_only_while_it_runs_as_the_base_does(tmp_path):
    found = project.read(
        write(
            tmp_path,
            '[tool.perfgate.variants.my-static]\nbase = "hf-bf16-static"\ndescription = "ours"\n'
            '[tool.perfgate.variants.my-dynamic]\nbase = "hf-bf16-static"\ncache = "dynamic"\n',
        )
    )
    mine = {v.name: v for v in found.variants}
    assert mine["my-static"].tolerances == variants.REGISTRY["hf-bf16-static"].tolerances != ()
    assert mine["my-dynamic"].tolerances == ()  # an eager step moves as the metric's defaults allow


def test_a_worker_is_handed_only_the_fields_a_variant_sets_and_never_the_gates_tolerances():
    # an A/B run's base may run an older perfgate (--perf-base-ref), whose Variant lacks newer fields
    static = variants.REGISTRY["hf-bf16-static"]
    spec = static.spec()
    assert "tolerances" not in spec and "step_delay" not in spec and spec["cache"] == "static"
    assert variants.Variant.from_spec(spec) == dataclasses.replace(static, tolerances=())
    assert set(variants.REGISTRY["hf-fp16"].spec()) == {"name", "description", "backend", "dtype"}


def test_no_pyproject_or_no_table_is_nothing(tmp_path):
    assert project.read(tmp_path) == project.Project(None)
    assert project.read(write(tmp_path, "[tool.other]\nx = 1\n")).options == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[tool.perfgate]\nround = 3\n", r"\[tool.perfgate\] round in .*pyproject.toml: not a perfgate setting"),
        ("[tool.perfgate]\nrounds = 0\n", r"\[tool.perfgate\] rounds = 0 in .*pyproject.toml: must be a whole number"),
        (
            '[tool.perfgate.variants.mine]\nbase = "hf-fp9"\n',
            r"\[tool.perfgate.variants.mine\] in .*pyproject.toml: base = 'hf-fp9' is not a variant",
        ),
        (
            '[tool.perfgate.variants.mine]\nbase = "hf-fp32"\nloder = "x:y"\n',
            r"\[tool.perfgate.variants.mine\] in .*: unknown key\(s\) loder",
        ),
        ('[tool.perfgate.variants.mine]\nbase = "hf-fp32"\nloader = "x.y"\n', "must be 'module:callable'"),
        ('[tool.perfgate.variants.mine]\nloader = "x:y"\n', "needs base = VARIANT, or backend and dtype"),
        ("[tool.perfgate\n", "cannot read it"),
    ],
)
def test_a_bad_entry_names_its_key_and_file(tmp_path, text, message):
    with pytest.raises(project.ProjectError, match=message):
        project.read(write(tmp_path, text))


def test_a_bad_entry_is_a_usage_error(pytester):
    pytester.makepyprojecttoml("[tool.perfgate]\nrounds = -1\n")
    pytester.makepyfile("def test_decode(variant_name):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "perfgate.plugin", "--perf-device=cpu")
    assert result.ret == 4  # pytest's usage error
    result.stderr.fnmatch_lines(["*[[]tool.perfgate[]] rounds = -1 in *pyproject.toml: must be a whole number*"])


def test_a_run_without_perf_tests_starts_nothing(pytester):
    pytester.makepyprojecttoml("[tool.perfgate]\nrounds = -1\n")  # not even read
    pytester.makepyfile("def test_unit():\n    import sys\n    assert 'torch' not in sys.modules\n")
    result = pytester.runpytest_subprocess("-p", "perfgate.plugin", f"--perf-results-dir={pytester.path / 'r'}")
    result.assert_outcomes(passed=1)
    said = [line for line in result.outlines if not line.startswith("plugins:")]  # pytest names it there
    assert not any("perfgate" in line for line in said) and not (pytester.path / "r").exists()


def test_precedence_env_then_project_then_ini(pytester, monkeypatch):
    pytester.makepyprojecttoml(
        '[tool.perfgate]\nrounds = 4\nwarmup = 2\n[tool.pytest.ini_options]\nperf_rounds = "7"\nperf_warmup = "5"\n'
        'perf_new_tokens = "9"\n'
    )
    pytester.makeconftest(
        "from pathlib import Path\nfrom perfgate import options, project\n"
        "def pytest_addoption(parser, pluginmanager):\n"
        "    if not pluginmanager.has_plugin('perfgate.plugin'):  # the installed plugin registered them\n"
        "        options.register(parser)\n"
        "def pytest_configure(config):\n"
        "    config.resolved = options.resolve(config, project.read(Path(config.rootpath)).options)\n"
    )
    pytester.makepyfile("def test_x(pytestconfig):\n    print('RESOLVED', pytestconfig.resolved)\n")
    monkeypatch.setenv("PERF_WARMUP", "3")
    result = pytester.runpytest("-s")
    line = next(x for x in result.outlines if "RESOLVED" in x)
    assert "'rounds': 4" in line and "'warmup': 3" in line and "'new_tokens': 9" in line
    assert "'rounds': 'rounds in [tool.perfgate]'" in line


def test_a_plugin_hook_adds_variants(pytester):
    pytester.makeconftest(
        "from perfgate.variants import Variant\n"
        "def pytest_perfgate_variants(config):\n"
        "    return [Variant('mine', 'my own loader', 'transformers', 'float32', loader='mypkg:load')]\n"
    )
    pytester.makepyfile("def test_load(variant_name):\n    pass\n")
    result = pytester.runpytest_subprocess(
        "-p", "perfgate.plugin", "--co", "-q", "--perf-device=cpu", "--perf-variants=mine", "--perf-agent=off"
    )
    assert result.ret == 0, result.stderr.str()
    result.stdout.fnmatch_lines(["*::test_load[[]mine[]]"])
