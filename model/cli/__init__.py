"""The command lines, one module each: ``python -m model.cli.NAME --help``, or the ``diffusion-lens-NAME`` commands
of pyproject.toml. Each applies its own policy (threads, arithmetic) before any work; the library never imports this
package."""
