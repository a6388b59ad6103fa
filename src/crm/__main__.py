"""`python -m crm` is the same as the `crm` command."""

from crm.cli import main

main()
