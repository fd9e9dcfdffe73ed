"""perfgate: a pytest plugin that gates the speed, memory and output fidelity of local LLM inference against a
committed baseline. The plugin is perfgate.plugin (registered through the pytest11 entry point)."""

__version__ = "0.1.0"
