"""One module per subcommand. A module here defines ``register(subparsers)``, which adds its
parser and sets ``func`` to a function ``(args) -> exit code``; ``ORDER`` (optional, default 50)
places it in ``perfbench --help``. Modules are found automatically: adding a command touches no
other file. Keep imports of heavy packages inside the command functions, so ``--help`` stays fast.
"""
