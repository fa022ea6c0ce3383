"""bench/noray: not Ray. See bench/noray/__init__.py."""

NORAY = True
