"""The `bme` command line: one Typer app over the whole package."""
