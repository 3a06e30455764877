"""One module a sub-command: `add_parser(subparsers)` sets `run` as the parser default."""
