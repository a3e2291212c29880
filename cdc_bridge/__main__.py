"""`python -m cdc_bridge` runs the CLI."""

from cdc_bridge.cli import main

main()
