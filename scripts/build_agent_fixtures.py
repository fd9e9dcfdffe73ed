"""Rebuild fixtures/agent (mailbox digest, questions, trajectories, traces); see perfgate/agent/build.py."""

import sys

from perfgate.agent.build import main

if __name__ == "__main__":
    sys.exit(main())
