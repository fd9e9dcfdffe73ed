#!/usr/bin/env bash
# How perfgate's H200 acceptance runs are made on the lent GPU machine (one command of at most 10 minutes each):
#   bash scripts/h200_session.sh baseline VARIANTS   # make baseline for those variants (results/ in the tree)
#   bash scripts/h200_session.sh perf VARIANTS N     # N make-perf runs in a row against the committed baseline
# Environment: ROUNDS (round options; "--perf-profile pr" runs make perf's profile, "--perf-profile ab" make ab's,
# whose workload is the options' below), PYTEST_EXTRA (more options: "-n 2 --dist loadgroup" on a two-GPU machine,
# nvidia-h200-x2, puts each variant on one GPU with its own reference), PYTEST_K (a -k expression), H200_DEADLINE,
# H200_MARGIN (no test starts later than this many seconds before the deadline), H200_STEPS=1 (each run's decode steps
# to results/steps/, through PERFGATE_STEP_LOG).
# What each call wrote under results/ (runs, reports, the baseline when written) goes to $OUT as one archive. The workload
# is cut to what fits the device time: ctx1024, 32 new tokens, the first 3 agent questions (docs/results.md).
# Each device command starts from this tree's copy: a baseline written by one command is not there for the next, unless
# H200_RESULTS names a folder outside the tree that stays while the machine is warm (/dev/shm/pgresults): results go
# there, its baseline seeded from the committed one on first use, so that a baseline run and the gate runs against it
# can be separate commands. Extract the archives here (tar -xzf), and rebuild the baseline from its runs with
# python -m perfgate.baselines.
# The working tree and carried paths travel together, at most 64 MiB: after ../shared/gpu/make-devsite.sh, take out
# what a run never imports on the machine's Python 3.12, `rm -rf .devsite/unsloth_cli
# .devsite/torchao/_C_mxfp8.cpython-310-*.so` (2.6 MB), and check with
# `du -cb --apparent-size .devsite $(git ls-files)`.
set -u
mode=$1 variants=$2 runs=${3:-1}
deadline=${H200_DEADLINE:-$(( $(date +%s) + 580 ))}  # one device command may run 600 s; the archive below takes a few
read -r -a extra <<< "${PYTEST_EXTRA:-}"
[ -n "${PYTEST_K:-}" ] && extra+=(-k "$PYTEST_K")  # a -k expression may hold spaces
export PYTHONPATH=$PWD/.devsite:$PWD HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 UNSLOTH_DISABLE_STATISTICS=1 \
       PYTHONUNBUFFERED=1 PERFGATE_CACHE=/dev/shm/pgcache PERFGATE_COMMIT=${PERFGATE_COMMIT:-unknown}
results=${H200_RESULTS:-results}
if [ "$results" != results ] && [ ! -e "$results/baselines/nvidia-h200.json" ]; then
  # (seeded once: a baseline committed meanwhile does not reach a warm machine's copy; -p keeps it out of the archive)
  mkdir -p "$results/baselines" && cp -p results/baselines/nvidia-h200.json "$results/baselines/"
fi
common=(perf_tests -p no:cacheprovider --perf-results-dir "$results" --perf-model synthetic:qwen3-14b --perf-variants "$variants"
        --perf-contexts 1024 --perf-new-tokens 32 ${ROUNDS:---perf-max-rounds 10 --perf-test-budget 150}
        --perf-agent-queries 3 -rs "${extra[@]}")
# No test starts later than H200_MARGIN s before the deadline, so a run ends by itself, its run file, report and
# baseline written; `timeout` (SIGTERM, which ends a run like Ctrl-C, the run file saying so) is the last word. Make
# the margin the longest test's seconds (the run file's time_split.tests_s): hf-int8's agent test once took over 100 s,
# and an A/B run's decode test, three pairs of processes under the default rule, over 150 s for unsloth-4bit.
pytest_until_deadline() {
  local left=$(( deadline - $(date +%s) ))
  if (( left - ${H200_MARGIN:-150} < 30 )); then echo "h200_session: ${left} s left before the deadline: no run"; return; fi
  [ -n "${H200_STEPS:-}" ] && export PERFGATE_STEP_LOG=$results/steps/$(date -u +%Y%m%dT%H%M%SZ)_nvidia-h200.steps.jsonl
  timeout "$left" python3 -m pytest "${common[@]}" --perf-session-budget $(( left - ${H200_MARGIN:-150} )) "$@"
}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv,noheader
start=$(date +%s)
if [ "$mode" = baseline ]; then
  pytest_until_deadline --perf-update-baselines 2>&1 | tail -80
else
  for i in $(seq "$runs"); do
    pytest_until_deadline 2>&1 | tail -45
  done
fi
# One archive per call of this script: the device tool brings back at most 8 files (a 9th would be lost).
find "$results"/runs "$results"/reports "$results"/baselines "$results"/steps -maxdepth 1 -newermt "@$start" -type f \
  2>/dev/null > /tmp/h200-new.txt
# (named to the nanosecond, and none when nothing is new: a call that ran nothing once overwrote the one before it,
# started in the same second)
[ -s /tmp/h200-new.txt ] || exit 0
archive="$OUT/results-$(date +%s%N).tgz"
# stored as results/..., wherever H200_RESULTS put them, so that `tar -xzf` here unpacks into results/
tar -czf "$archive" --transform "s|^${results#/}/|results/|" -T /tmp/h200-new.txt && tar -tzf "$archive" | tail -20
