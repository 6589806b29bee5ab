"""``python -m streamify``: the command line (see :mod:`streamify.cli`)."""

from streamify.cli import main

if __name__ == "__main__":
    main()
