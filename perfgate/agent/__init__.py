"""The users' agent workload: an email-search agent on a deterministic SQLite mailbox (mailbox), its three tools
(tools), hermes-style tool-call parsing (toolcalls), questions with scripted trajectories and per-turn token
traces (fixtures/agent, built by build, read by traces), and the real agent loop (live, report-only). Replaying the
traces, the gated mode, is the worker's `agent_replay` op driven by perfgate.measure.agent."""
