"""Running from this working tree without installing perfgate: the plugin by name. An installed perfgate registers
it under the same name first (its pytest11 entry point), and pytest then does not register it again."""

pytest_plugins = ["perfgate.plugin"]
