import pytest

from perfgate import options


@pytest.mark.parametrize(
    ("parse", "text", "expected"),
    [
        (options.positive_int, "5", 5),
        (options.non_negative_int, "0", 0),
        (options.int_list, "4096, 128,1024,128", (128, 1024, 4096)),
        (options.fraction, "15%", 0.15),
        (options.fraction, "0.2", 0.2),
        (options.positive_float, "1.5", 1.5),
    ],
)
def test_good_values(parse, text, expected):
    assert parse(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (options.positive_int, "-3", "at least 1"),
        (options.positive_int, "five", "whole number"),
        (options.non_negative_int, "-1", "at least 0"),
        (options.int_list, "128,0", "at least 1"),
        (options.int_list, ",", "at least one"),
        (options.fraction, "150%", "at most 100 %"),
        (options.fraction, "0", "above 0"),
        (options.choice("auto", "cpu"), "gpu", "one of auto, cpu"),
    ],
)
def test_bad_values_say_what_is_allowed(parse, text, message):
    with pytest.raises(ValueError, match=message):
        parse(text)


def test_names():
    opt = next(o for o in options.OPTIONS if o.name == "new-tokens")
    assert (opt.flag, opt.dest, opt.env) == ("--perf-new-tokens", "perf_new_tokens", "PERF_NEW_TOKENS")


def test_precedence_cli_then_env_then_ini(pytester, monkeypatch):
    pytester.makeini("[pytest]\nperf_rounds = 7\nperf_warmup = 2\n")
    pytester.makeconftest(
        "from perfgate import options\n"
        "def pytest_addoption(parser):\n    options.register(parser)\n"
        "def pytest_configure(config):\n    config.resolved = options.resolve(config)\n"
    )
    pytester.makepyfile("def test_x(pytestconfig):\n    print('RESOLVED', pytestconfig.resolved)\n")
    monkeypatch.setenv("PERF_WARMUP", "3")
    monkeypatch.setenv("PERF_NEW_TOKENS", "9")
    result = pytester.runpytest("-s", "--perf-new-tokens=11")
    line = next(x for x in result.outlines if "RESOLVED" in x)
    assert "'rounds': 7" in line and "'warmup': 3" in line and "'new_tokens': 11" in line


def test_a_bad_value_names_its_origin(pytester, monkeypatch):
    pytester.makeconftest(
        "from perfgate import options\n"
        "def pytest_addoption(parser):\n    options.register(parser)\n"
        "def pytest_configure(config):\n    options.resolve(config)\n"
    )
    monkeypatch.setenv("PERF_ROUNDS", "-2")
    result = pytester.runpytest_subprocess()
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*--perf-rounds (from PERF_ROUNDS) = '-2': must be a whole number of at least 1*"])
