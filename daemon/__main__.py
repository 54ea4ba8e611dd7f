"""``python -m daemon`` runs the command line."""

from daemon.cli import entry

if __name__ == "__main__":
    entry()
