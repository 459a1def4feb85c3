"""Node throughput benchmark (same as `qkdchain bench node`)."""

import sys

from qkdchain.cli import app

if __name__ == "__main__":
    app(["bench", "node", *sys.argv[1:]])
