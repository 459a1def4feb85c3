"""IBC signature benchmark (same as `qkdchain bench ibc`)."""

import sys

from qkdchain.cli import app

if __name__ == "__main__":
    app(["bench", "ibc", *sys.argv[1:]])
