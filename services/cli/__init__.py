"""The `kit` command-line interface; `services.cli.app` is the root."""
