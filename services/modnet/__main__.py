"""`python -m services.modnet ...`: see services/modnet/cli.py."""

from services.modnet.cli import main

main()
