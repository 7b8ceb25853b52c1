"""Command implementations behind ``gateway/cli.py`` (which only parses and dispatches).

Each module holds one command (or one command group); shared pieces live in :mod:`.common`.
A handler takes the parsed arguments and the environment and returns the exit status.
"""
