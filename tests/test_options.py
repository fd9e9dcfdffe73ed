import re

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
        (options.fraction, "0%", 0.0),
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
        (options.fraction, "150%", "to 100 %"),
        (options.fraction, "-5%", "from 0"),
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


def test_the_users_dotenv_names_are_read_and_perf_names_win(pytester, monkeypatch):
    pytester.makeini("[pytest]\n")
    pytester.makeconftest(
        "from perfgate import options\n"
        "def pytest_addoption(parser):\n    options.register(parser)\n"
        "def pytest_configure(config):\n    config.resolved = options.resolve(config)\n"
    )
    pytester.makepyfile("def test_x(pytestconfig):\n    print('RESOLVED', pytestconfig.resolved)\n")
    (pytester.path / ".env").write_text(
        "# the users' settings\nMODEL_NAME=synthetic:qwen3-tiny\nMAX_TOKENS=64\nexport MAX_SEQ_LENGTH='2048'\n"
        "TEST_SET_SIZE=10\nVERBOSE=true\n"
    )
    monkeypatch.delenv("MAX_TOKENS", raising=False)
    monkeypatch.setenv("PERF_MAX_SEQ_LENGTH", "4096")  # perfgate's own name wins over MAX_SEQ_LENGTH
    result = pytester.runpytest("-s")
    line = next(x for x in result.outlines if "RESOLVED" in x)
    assert "'model': 'synthetic:qwen3-tiny'" in line and "'new_tokens': 64" in line
    assert "'max_seq_length': 4096" in line
    assert "'model': 'MODEL_NAME in .env'" in line and "'max_seq_length': 'PERF_MAX_SEQ_LENGTH'" in line


def test_dotenv_parsing(tmp_path):
    (tmp_path / ".env").write_text('A=1\n# c\n\nexport B="two words"\nnot a line\n')
    assert options.read_dotenv(tmp_path / ".env") == {"A": "1", "B": "two words"}
    assert options.read_dotenv(tmp_path / "missing") == {}


@pytest.mark.parametrize("value", ["1", "-3"])
def test_new_tokens_too_few_get_one_message(pytester, monkeypatch, value):
    """1 and -3 are both too few for one decode step: the same message, from the option's own parser."""
    pytester.makeconftest(
        "import pytest\nfrom perfgate import options\n"
        "def pytest_addoption(parser):\n    options.register(parser)\n"
        "def pytest_configure(config):\n"
        "    try:\n        options.resolve(config)\n"
        "    except ValueError as exc:\n        raise pytest.UsageError(str(exc)) from None\n"
    )
    result = pytester.runpytest_subprocess(f"--perf-new-tokens={value}")
    assert result.ret != 0
    result.stderr.fnmatch_lines(
        [f"ERROR: --perf-new-tokens (from --perf-new-tokens) = '{value}': must be a whole number of at least 2"]
    )
    assert "Traceback" not in result.stderr.str()


def test_an_ini_value_names_its_file(pytester):
    pytester.makeini("[pytest]\nperf_rounds = 0\n")
    pytester.makeconftest(
        "from perfgate import options\n"
        "def pytest_addoption(parser):\n    options.register(parser)\n"
        "def pytest_configure(config):\n    options.resolve(config)\n"
    )
    result = pytester.runpytest_subprocess()
    result.stderr.fnmatch_lines(["*--perf-rounds (from perf_rounds in tox.ini) = '0': must be a whole number of at*"])


def test_help_says_each_default_once(pytester):
    pytester.makeconftest("from perfgate import options\ndef pytest_addoption(parser):\n    options.register(parser)\n")
    blocks: dict[str, str] = {}  # an option's help: from its line ("  --perf-rounds=ROUNDS ...") to the next one's
    for line in pytester.runpytest("--help").outlines:
        start = re.match(r"^  (--perf-[\w-]+)", line)
        if start:
            flag = start.group(1)
        elif not line.startswith("   "):
            flag = None
        if flag:
            blocks[flag] = blocks.get(flag, "") + line
    assert set(blocks) == {opt.flag for opt in options.OPTIONS}
    for flag, said in blocks.items():
        assert said.count("Default:") == 1, (flag, said)


def test_an_option_whose_default_the_session_decides_says_it_in_its_help():
    assert all("Default:" in opt.help for opt in options.OPTIONS if opt.default is None)
