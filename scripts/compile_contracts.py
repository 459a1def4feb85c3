"""Compile the contracts (same as `qkdchain compile`)."""

import sys

from qkdchain.cli import app

if __name__ == "__main__":
    app(["compile", *sys.argv[1:]])
