"""The `kit` command-line interface; `kit.cli.app` is the root."""
