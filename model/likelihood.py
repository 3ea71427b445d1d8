"""``python -m model.likelihood``: the README's command for the bound in bits/dim (the command line is
:mod:`model.cli.likelihood`)."""

from model.cli.likelihood import main

if __name__ == "__main__":
    raise SystemExit(main())
