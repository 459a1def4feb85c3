"""Print the gas table of every KeyRegistry function (same as `qkdchain gas`)."""

import sys

from qkdchain.cli import app

if __name__ == "__main__":
    app(["gas", *sys.argv[1:]])
