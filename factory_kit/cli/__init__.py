"""The command line: one module per command group; each parses, calls one function, prints."""

from factory_kit.cli.main import main

__all__ = ["main"]
