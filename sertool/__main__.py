"""``python -m sertool`` runs the command-line interface."""

from sertool.cli.entry import main

if __name__ == "__main__":
    main()
