"""[tool.perfgate] in the measured repository's pyproject.toml: its settings and its own variants.

    [tool.perfgate]
    model = "synthetic:qwen3-tiny"      # any --perf-* option, by its name without the prefix
    contexts = [128, 1024]
    tolerance = { decode_tok_per_s = "20%" }

    [tool.perfgate.variants.my-fp32]    # a variant of one's own; without a `variants` list, the declared
    base = "hf-fp32"                    # ones are what a run measures
    loader = "mypkg.loading:load"       # (path, device, max_seq_length) -> (model, tokenizer)

Settings rank below the command line, the environment and .env, and above pytest's ini options (perfgate.options).
A bad entry is a ProjectError naming the key and the file (the plugin makes it a pytest.UsageError).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perfgate import options, variants

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: no TOML reader in the standard library; tomli where installed
    try:
        import tomli as tomllib
    except ModuleNotFoundError:
        tomllib = None

TABLE = "[tool.perfgate]"
ALIASES = {"tolerances": "tolerance"}
# what a declared variant may set; the rest of its fields come from its base, or from the defaults of Variant
VARIANT_KEYS = {"base", "description", "backend", "dtype", "quantization", "cache", "devices", "packages", "loader"}
VARIANT_KEYS |= {"default"}  # false: measured only when named in --perf-variants
DTYPES = ("float32", "float16", "bfloat16")
HOW_IT_RUNS = ("backend", "dtype", "quantization", "cache", "loader")  # a variant changing one is not its base


class ProjectError(ValueError):
    pass


@dataclass(frozen=True)
class Project:
    path: Path | None  # the pyproject.toml read, or None where there is none (or no TOML reader)
    options: dict[str, str] = field(default_factory=dict)  # option name ("results-dir") -> its value as text
    variants: tuple[variants.Variant, ...] = ()


def read(root: Path) -> Project:
    """The [tool.perfgate] table of root/pyproject.toml; an empty Project where there is none."""
    path = root / "pyproject.toml"
    if not path.is_file():
        return Project(None)
    if tomllib is None:
        if "[tool.perfgate" in path.read_text(encoding="utf-8", errors="replace"):
            raise ProjectError(f"{path}: reading {TABLE} needs Python 3.11 or later, or tomli (pip install tomli)")
        return Project(None)
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("tool", {}).get("perfgate", {})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProjectError(f"{path}: cannot read it: {exc}") from None
    known = {o.name: o for o in options.OPTIONS}
    texts: dict[str, str] = {}
    declared: tuple[variants.Variant, ...] = ()
    for key, value in table.items():
        name = ALIASES.get(key, key).replace("_", "-")
        if name == "variants" and isinstance(value, dict):
            declared = tuple(_variant(n, spec, path, root) for n, spec in value.items())
            continue
        if name not in known:
            raise ProjectError(f"{TABLE} {key} in {path}: not a perfgate setting (known: {', '.join(known)})")
        texts[name] = _text(value, f"{TABLE} {key} in {path}")
        try:
            known[name].parse(texts[name])
        except ValueError as exc:
            raise ProjectError(f"{TABLE} {key} = {value!r} in {path}: {exc}") from None
    if declared and "variants" not in texts:
        texts["variants"] = ",".join(v.name for v in declared if v.default_on)
    return Project(path, texts, declared)


def _text(value: Any, where: str) -> str:
    """A TOML value as the option's text: lists comma-joined, a table as NAME=VALUE pairs, true/false."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict) and all(isinstance(v, (str, int, float)) for v in value.values()):
        return ",".join(f"{k}={v}" for k, v in value.items())
    raise ProjectError(f"{where}: {value!r} is neither a string, a number, a list nor a table of them")


def _variant(name: str, spec: Any, path: Path, root: Path) -> variants.Variant:
    where = f"[tool.perfgate.variants.{name}] in {path}"
    if not isinstance(spec, dict):
        raise ProjectError(f"{where}: must be a table (base = ..., loader = ...)")
    unknown = sorted(set(spec) - VARIANT_KEYS)
    if unknown:
        raise ProjectError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(VARIANT_KEYS))})")
    fields: dict[str, Any] = {"description": f"{name}, declared in {path.name}"}
    base_name = spec.get("base")
    if base_name is not None:
        if base_name not in variants.REGISTRY:
            raise ProjectError(
                f"{where}: base = {base_name!r} is not a variant (known: {', '.join(variants.REGISTRY)})"
            )
        base = variants.REGISTRY[base_name]
        fields = {**dataclasses.asdict(base), "description": f"{base.description}; {name}, declared in {path.name}"}
        fields.pop("baseline_of")  # gated against its own baseline entries, not its base's
        fields.pop("step_delay")
        fields.pop("device_delay")  # a canary's slowdown is not inherited either
    elif "backend" not in spec or "dtype" not in spec:
        raise ProjectError(f"{where}: needs base = VARIANT, or backend and dtype")
    for key in ("description", "backend", "dtype", "quantization", "cache", "loader"):
        if key in spec:
            if not isinstance(spec[key], str):
                raise ProjectError(f"{where}: {key} = {spec[key]!r} must be a string")
            fields[key] = spec[key]
    if base_name is not None and any(spec.get(k, fields[k]) != getattr(base, k) for k in HOW_IT_RUNS):
        # the base's own tolerances say how far its figures move; a variant that runs otherwise has the defaults
        fields["tolerances"] = ()
    if fields["dtype"] not in DTYPES:
        raise ProjectError(f"{where}: dtype = {fields['dtype']!r} must be one of {', '.join(DTYPES)}")
    if fields.get("loader") and (":" not in fields["loader"] or fields["loader"].startswith(":")):
        raise ProjectError(f"{where}: loader = {fields['loader']!r} must be 'module:callable'")
    for key in ("devices", "packages"):
        if key in spec:
            if not isinstance(spec[key], list) or not all(isinstance(v, str) for v in spec[key]):
                raise ProjectError(f"{where}: {key} must be a list of strings")
            fields[key] = spec[key]
    devices = frozenset(fields.get("devices", (variants.CUDA, variants.CPU)))
    if not devices <= {variants.CUDA, variants.CPU}:
        raise ProjectError(f"{where}: devices must list among {variants.CUDA}, {variants.CPU}")
    default = spec.get("default", True)
    if not isinstance(default, bool):
        raise ProjectError(f"{where}: default must be true or false")
    fields.update(
        name=name,
        devices=devices,
        default_on=devices if default else frozenset(),
        packages=tuple(fields.get("packages", ())),
        import_path=(str(root),),  # the loader's package is the measured repository's
    )
    return variants.Variant(**fields)
