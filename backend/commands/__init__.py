"""CLI commands that do not belong to one subsystem."""
