"""``python -m agy_trio``: the command line."""

from agy_trio.cli import main

if __name__ == "__main__":
    main()
