"""The users' workload: an email-search agent answering questions in turns (search, read, answer), each turn a
new generation over the whole conversation so far. Per-query latency is what the users feel.

test_agent replays the committed traces (fixtures/agent/traces.json: the token count of every turn of each
question, Qwen3's chat template, Qwen's vocabulary): every turn generates exactly the recorded reply over a prompt
of the recorded length, no prefix reuse, as the users' agent runs. Gated: per-query latency p50 and p95 (each
turn against the baseline's same turn) and the longest query's peak VRAM. With --perf-agent reuse, one more pass
keeps the KV cache between turns and reports what prefix reuse would save.

test_agent_live runs the real agent loop (tools on the SQLite mailbox, the model's own tool calls), report-only;
on a synthetic model it shows the loop's cost and robustness, never answers.

    python -m pytest perf_tests -k test_agent --perf-agent-queries 10 [--perf-agent replay,reuse,live]
"""

from perfgate.measure import agent_figures, live_figures


def test_agent(agent_mode, loaded, variant_name, measure_agent, gate):
    gate(agent_figures(variant_name, measure_agent(loaded)))


def test_agent_live(agent_mode, loaded, variant_name, measure_agent_live, perf, gate):
    gate(live_figures(variant_name, perf.agent_workload, measure_agent_live(loaded)))
