"""The users' agent workload: an email-search agent on a deterministic SQLite mailbox (mailbox), its three tools
(tools), hermes-style tool-call parsing (toolcalls), questions with scripted trajectories and per-turn token
traces (fixtures/agent, built by scripts/build_agent_fixtures.py), and the two ways of running it: replaying the
traces (replay, gated) and the real agent loop (live, report-only)."""
