"""The ``qkdchain`` command: each package's commands assembled in one typer app (:mod:`qkdchain.cli`)."""
