from perfgate import figures as fig
from perfgate import table


def sample_figures():
    return [
        fig.from_samples("hf-fp16", "decode", "ctx1024", "decode_tok_per_s", "tok/s", fig.HIGHER, True, [20, 22, 24]),
        fig.from_samples("hf-fp16", "decode", "ctx1024", "ttft_s", "s", fig.LOWER, True, [0.06, 0.06]),
        fig.single("hf-fp16", "decode", "ctx1024", "peak_vram_mib", "MiB", fig.LOWER, True, 29268.0),
        fig.single("hf-fp16", "decode", "ctx1024", "peak_vram_device_mib", "MiB", fig.LOWER, False, None, "no NVML"),
        fig.single("hf-fp16", "load", "", "load_s", "s", fig.LOWER, False, 18.3),
    ]


def test_text_table_has_units_values_and_spread():
    text = table.render(sample_figures())
    lines = text.splitlines()
    header = [c.strip() for c in lines[0].split("  ") if c.strip()]
    assert header == [
        "variant",
        "workload",
        "decode tok/s",
        "× hf-fp16",
        "TTFT s",
        "peak VRAM MiB",
        "device Δ MiB",
        "torch max MiB",
        "% of bandwidth bound",
        "J/token",
    ]
    row = next(x for x in lines if x.startswith("hf-fp16  ctx1024"))
    assert "22.0 ±9%" in row and "0.060 ±0%" in row and "29,268" in row and "n/a" in row
    assert any(x.startswith("hf-fp16") and x.rstrip().endswith("18.3") for x in lines)


def test_markdown_round_trip_from_a_run_file():
    run = {"results": [f.to_dict() for f in sample_figures()]}
    figures = table.figures_of(run)
    assert figures == sample_figures()
    md = table.render(figures, markdown=True)
    assert "| variant | workload | decode tok/s |" in md
    assert "| hf-fp16 | ctx1024 | 22.0 ±9% |  | 0.060 ±0% | 29,268 | n/a |  |  |  |" in md
