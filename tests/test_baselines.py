import dataclasses
import json

import pytest

from perfgate import baselines, metrics, table, variants
from perfgate import figures as fig

MACHINE = {
    "gpu": "NVIDIA H200",
    "gpu_slug": "nvidia-h200",
    "driver": "580.159.04",
    "cuda": "13.0",
    "python": "3.12.3",
    "commit": "a" * 40,
    "versions": {"torch": "2.11.0", "transformers": "5.17.0"},
}


def figure(variant="hf-fp16", metric="decode_tok_per_s", samples=(20.0, 22.0, 24.0)):
    unit = metrics.expected_unit(metric)
    return fig.from_samples(variant, "decode", "ctx1024", metric, unit, fig.HIGHER, True, samples, {"new_tokens": 128})


def test_missing_file_is_an_empty_baseline(tmp_path):
    b = baselines.Baseline.load(tmp_path / "nvidia-h200.json")
    assert not b.exists and b.entry("synthetic:qwen3-14b", "x") is None


def test_update_writes_and_a_subset_update_keeps_the_rest(tmp_path):
    path = tmp_path / "nvidia-h200.json"
    b = baselines.Baseline.load(path)
    doc = b.updated(
        "synthetic:qwen3-14b",
        [figure("hf-fp16"), figure("hf-nf4")],
        MACHINE,
        {"decode_tok_per_s": 0.25},
        "2026-11-28T09:00:00+00:00",
    )
    b.write(doc)
    entry = baselines.Baseline.load(path).entry("synthetic:qwen3-14b", "hf-fp16/decode[ctx1024]/decode_tok_per_s")
    assert entry["value"] == 22.0 and entry["unit"] == "tok/s" and entry["better"] == "higher"
    assert entry["tolerance"] == 0.25 and entry["samples"] == [20.0, 22.0, 24.0] and entry["stats"]["n"] == 3
    b2 = baselines.Baseline.load(path)
    doc2 = b2.updated(
        "synthetic:qwen3-14b",
        [figure("hf-nf4", samples=(30.0, 31.0))],
        MACHINE,
        {"decode_tok_per_s": 0.25},
        "2026-11-29T09:00:00+00:00",
    )
    assert baselines.diff(b2, doc2) == [
        ("synthetic:qwen3-14b", "hf-nf4/decode[ctx1024]/decode_tok_per_s", 22.0, 30.5, pytest.approx(100 * 8.5 / 22))
    ]
    b2.write(doc2)
    entries = baselines.Baseline.load(path).model("synthetic:qwen3-14b")["entries"]
    assert entries["hf-fp16/decode[ctx1024]/decode_tok_per_s"]["value"] == 22.0  # untouched
    text = path.read_text()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"  # sorted and indented


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "is not valid JSON"),
        ('{"schema": 7, "models": {}}', "this perfgate reads schema 1"),
        ('{"schema": 1}', "'models' is missing"),
        (
            '{"schema": 1, "models": {"m": {"machine": {}, "entries": {"hf-fp16/decode[ctx1]/ttft_s": {"value": 1}}}}}',
            "misses unit, better, tolerance",
        ),
        (
            '{"schema": 1, "models": {"m": {"machine": {}, "entries": {"hf-fp16/decode[ctx1]/ttft_s": '
            '{"value": 1, "unit": "ms", "better": "lower", "tolerance": 0.1}}}}}',
            "unit 'ms', but ttft_s is measured in 's'",
        ),
        (
            '{"schema": 1, "models": {"m": {"machine": {}, "entries": {"a/load/load_s": '
            '{"value": -1, "unit": "s", "better": "lower", "tolerance": 0.1}}}}}',
            "is not a non-negative number",
        ),
    ],
)
def test_a_bad_file_names_itself_and_the_problem(tmp_path, content, problem):
    path = tmp_path / "nvidia-h200.json"
    path.write_text(content)
    with pytest.raises(baselines.BaselineError) as err:
        baselines.Baseline.load(path)
    assert str(path) in str(err.value) and problem in str(err.value)


def test_machine_changes():
    new = dict(MACHINE, driver="590.1", commit="b" * 40, versions={"torch": "2.11.0", "transformers": "5.18.0"})
    assert baselines.machine_changes(MACHINE, new) == [
        "driver 580.159.04 → 590.1",
        f"commit {'a' * 12} → {'b' * 12}",
        "transformers 5.17.0 → 5.18.0",
    ]
    assert baselines.machine_changes(None, new) == []


def test_another_physical_gpu_is_named_where_both_sides_know_theirs():
    old = dict(MACHINE, gpu_uuid="GPU-1111")
    assert baselines.machine_changes(old, dict(MACHINE, gpu_uuid="GPU-2222")) == [
        "GPU GPU-1111 → GPU-2222 (another physical GPU of the same model)"
    ]
    assert baselines.machine_changes(old, dict(MACHINE, gpu_uuid="GPU-1111")) == []
    assert baselines.machine_changes(MACHINE, dict(MACHINE, gpu_uuid="GPU-2222")) == []  # an older baseline: unknown


def test_an_entry_is_compared_with_its_own_machine_not_the_files_last_one():
    model = {"machine": dict(MACHINE, gpu_uuid="GPU-last", commit="c" * 40)}
    own = dict(MACHINE, gpu_uuid="GPU-own")
    assert baselines.entry_machine(model, {"machine": own}) == own
    older = baselines.entry_machine(model, {"commit": "a" * 40})  # an entry from before entries kept their machine
    assert older["commit"] == "a" * 40 and "gpu_uuid" not in older  # its own commit; its GPU unknown
    assert baselines.machine_changes(older, dict(MACHINE, gpu_uuid="GPU-now")) == []
    assert baselines.entry_machine(model, None) == model["machine"]


def write_run(results, name, figures, update_baselines=True, started="2026-11-29T09:18:04+00:00"):
    path = results / "runs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    run = {
        "started_at": started,
        "machine": MACHINE,
        "model": {"source": "synthetic:qwen3-14b"},
        "options": {"update_baselines": update_baselines, "tolerance": {"ttft_s": 0.5}},
        "results": [f.to_dict() for f in figures],
    }
    path.write_text(json.dumps(run))
    return path


def test_baseline_runs_are_written_again_in_order_as_they_wrote_them(tmp_path, capsys):
    results = tmp_path / "results"
    first = write_run(results, "a.json", [figure("hf-fp16"), figure("hf-nf4"), figure("hf-fp16-slow")])
    second = write_run(
        results,
        "b.json",
        [figure("hf-nf4", samples=(30.0, 31.0)), figure("hf-bf16", metric="ttft_s", samples=(0.06,))],
        started="2026-11-29T09:26:18+00:00",
    )
    assert baselines.main([str(first), str(second)]) == 0
    model = baselines.Baseline.load(results / "baselines" / "nvidia-h200.json").model("synthetic:qwen3-14b")
    entries = model["entries"]
    assert sorted(entries) == [
        "hf-bf16/decode[ctx1024]/ttft_s",
        "hf-fp16/decode[ctx1024]/decode_tok_per_s",
        "hf-nf4/decode[ctx1024]/decode_tok_per_s",
    ]  # the canary is judged against hf-fp16's entries and has none of its own
    assert entries["hf-nf4/decode[ctx1024]/decode_tok_per_s"]["value"] == 30.5  # the later run wins
    assert entries["hf-fp16/decode[ctx1024]/decode_tok_per_s"]["measured_at"] == "2026-11-29T09:18:04+00:00"
    assert entries["hf-bf16/decode[ctx1024]/ttft_s"]["tolerance"] == 0.5  # the run's own --perf-tolerance
    assert entries["hf-fp16/decode[ctx1024]/decode_tok_per_s"]["tolerance"] == 0.45  # the default
    assert model["updated_at"] == "2026-11-29T09:26:18+00:00" and model["machine"] == MACHINE
    assert all(e["machine"] == MACHINE for e in entries.values())  # each entry keeps the machine it came from
    out = capsys.readouterr().out
    assert ["hf-nf4/decode[ctx1024]/decode_tok_per_s", "22.0", "30.5", "+38.6"] in [x.split() for x in out.splitlines()]


def test_a_declared_variant_keeps_its_own_tolerance_when_written_from_the_command_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "pyproject.toml").write_text('[tool.perfgate.variants.my-static]\nbase = "hf-bf16-static"\n')
    monkeypatch.chdir(tmp_path)  # the repository whose [tool.perfgate] declares it
    monkeypatch.setattr(variants, "REGISTRY", dict(variants.REGISTRY))  # registered for this test only
    device = fig.from_samples("my-static", "decode", "ctx1024", "device_ms_per_token", "ms", fig.LOWER, True,
                              (9.6, 9.6, 9.7), {"new_tokens": 128})  # fmt: skip
    run = write_run(tmp_path / "results", "a.json", [device])
    assert baselines.main([str(run)]) == 0
    model = baselines.Baseline.load(tmp_path / "results" / "baselines" / "nvidia-h200.json").model(
        "synthetic:qwen3-14b"
    )
    assert model["entries"]["my-static/decode[ctx1024]/device_ms_per_token"]["tolerance"] == 0.08
    monkeypatch.setattr(variants, "REGISTRY", {n: v for n, v in variants.REGISTRY.items() if n in variants.BUILTIN})
    monkeypatch.chdir(tmp_path / "results")  # elsewhere: the variant is unknown, and the command says so
    assert baselines.main([str(run)]) == 0
    assert "my-static is declared nowhere here" in capsys.readouterr().err


def test_only_the_named_variants_entries_are_taken(tmp_path, capsys):
    results = tmp_path / "results"
    first = write_run(results, "a.json", [figure("hf-fp16"), figure("hf-nf4")])
    second = write_run(results, "b.json", [figure("hf-fp16", samples=(30.0,)), figure("hf-nf4", samples=(40.0,))])
    assert baselines.main([str(first)]) == 0
    assert baselines.main(["--variants", "hf-nf4", str(second)]) == 0
    entries = baselines.Baseline.load(results / "baselines" / "nvidia-h200.json").model("synthetic:qwen3-14b")[
        "entries"
    ]
    assert entries["hf-nf4/decode[ctx1024]/decode_tok_per_s"]["value"] == 40.0
    assert entries["hf-fp16/decode[ctx1024]/decode_tok_per_s"]["value"] == 22.0  # kept as the file had it
    capsys.readouterr()
    assert baselines.main(["--variants", "hf-int8", str(second)]) == 2
    assert f"run file {second}: holds no measured gated figure of hf-int8" in capsys.readouterr().err


def test_a_gate_run_or_a_broken_file_is_refused_naming_it(tmp_path, capsys):
    results = tmp_path / "results"
    gate_run = write_run(results, "gate.json", [figure()], update_baselines=False)
    assert baselines.main([str(gate_run)]) == 2
    assert f"run file {gate_run}: a gate run, not a baseline run" in capsys.readouterr().err
    broken = results / "runs" / "broken.json"
    broken.write_text("{")
    assert baselines.main([str(broken)]) == 2
    assert f"run file {broken}: not a perfgate run file" in capsys.readouterr().err
    assert not (results / "baselines").exists()  # nothing written


def test_an_entry_noisier_than_its_tolerance_is_pointed_out(tmp_path):
    def ratio(variant, interval):
        f = figure(variant, "decode_ratio_to_ref", samples=(0.8, 0.9, 1.0))
        return dataclasses.replace(f, params={**f.params, "interval": interval})

    b = baselines.Baseline.load(tmp_path / "nvidia-h200.json")
    figures = [ratio("hf-nf4", [0.55, 0.95]), ratio("hf-bf16", [0.88, 0.97]), figure("hf-fp16")]
    doc = b.updated("synthetic:qwen3-14b", figures, MACHINE, {}, "2026-11-29T09:00:00+00:00")
    noisy = baselines.too_noisy(doc, baselines.diff(b, doc))
    assert [(key, round(reach, 3)) for key, *_, reach in noisy] == [
        ("hf-nf4/decode[ctx1024]/decode_ratio_to_ref", 0.389)  # 0.55 is 39 % below 0.9; hf-bf16's 2 % is within 5 %
    ]
    (line,) = table.render_noisy(noisy)
    assert line.startswith("warning: hf-nf4/decode[ctx1024]/decode_ratio_to_ref = 0.900: its own 98% interval")
    assert "reaches 39% to the worse side, beyond its 5% tolerance" in line and "--perf-baseline-rounds" in line


def test_an_entry_too_noisy_for_its_tolerance_is_written_marked_with_its_floor(tmp_path):
    f = figure("hf-nf4", "decode_ratio_to_ref", samples=(0.8, 0.9, 1.0))
    noisy = dataclasses.replace(f, params={**f.params, "interval": [0.72, 0.95]})
    calm = dataclasses.replace(
        figure("hf-bf16", "decode_ratio_to_ref", samples=(0.8, 0.9, 1.0)), params={**f.params, "interval": [0.88, 0.97]}
    )
    b = baselines.Baseline.load(tmp_path / "nvidia-h200.json")
    doc = b.updated("synthetic:qwen3-14b", [noisy, calm], MACHINE, {}, "2026-11-29T09:00:00+00:00")
    b.write(doc)  # the schema's validation takes the mark
    entries = json.loads((tmp_path / "nvidia-h200.json").read_text())["models"]["synthetic:qwen3-14b"]["entries"]
    mark = entries["hf-nf4/decode[ctx1024]/decode_ratio_to_ref"]["too_noisy"]
    # 0.72 is 20 % below 0.9; with the 5 % tolerance on top, only a regression of 24 % (1 - 0.8 x 0.95) can fail
    assert mark["interval"] == [0.72, 0.95] and mark["reach"] == pytest.approx(0.2)
    assert mark["floor"] == pytest.approx(0.24)
    assert "too_noisy" not in entries["hf-bf16/decode[ctx1024]/decode_ratio_to_ref"]


def test_a_figure_held_to_a_noisy_entrys_floor_is_named():
    record = {
        "baseline": {"key": "hf-bf16/decode[ctx128]/decode_ratio_to_ref", "too_noisy": {"floor": 0.24, "reach": 0.2}}
    }
    (line,) = table.render_held_to_floor([record, {"baseline": {"key": "x"}}, {}])
    assert line.startswith("baseline too noisy: hf-bf16/decode[ctx128]/decode_ratio_to_ref cannot catch a regression")
    assert "smaller than 24% (its own interval reaches 20% to the worse side)" in line
