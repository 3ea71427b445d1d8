"""``python -m model.figure``: the README's command for the blog figure (the command line is :mod:`model.cli.figure`)."""

from model.cli.figure import main

if __name__ == "__main__":
    raise SystemExit(main())
