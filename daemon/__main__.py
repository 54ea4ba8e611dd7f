"""``python -m daemon`` runs the command line."""

from daemon.cli import main

if __name__ == "__main__":
    main()
