"""Placeholder: filled in by its own change."""


def register(subparsers):
    return None
