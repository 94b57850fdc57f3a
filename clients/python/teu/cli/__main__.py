"""``python -m teu.cli``."""

from teu.cli.main import main

main()
