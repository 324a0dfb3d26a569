"""One module per group of ``neon`` commands; each command is one function of its parsed arguments
(and, for commands that talk to a control plane, the client). May import anything below the CLI."""
