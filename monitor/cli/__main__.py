"""``python -m monitor.cli``: the ``monitor`` command."""

from monitor.cli import main

if __name__ == "__main__":
    main()
