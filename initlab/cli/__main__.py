"""`python -m initlab.cli ...` runs the command line."""

from initlab.cli import main

main()
