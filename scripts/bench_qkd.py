"""QKD engine benchmark (same as `qkdchain bench qkd`)."""

import sys

from qkdchain.cli import app

if __name__ == "__main__":
    app(["bench", "qkd", *sys.argv[1:]])
