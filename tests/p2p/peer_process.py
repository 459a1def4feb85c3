"""A libp2p peer in its own OS process, for tests: echoes frames and answers requests.

Run as ``python -m tests.p2p.peer_process KEY_HEX PORT PEERS_FILE``. It writes ``ready``
on stdout once listening and runs until stdin closes (or it is killed). Every frame
``f`` from ``s`` is answered by ``send(s, b"echo:" + f)``; a request ``r`` by
``b"re:" + r``.
"""

from __future__ import annotations

import sys

from node.p2p.errors import P2PError
from node.p2p.libp2p import Libp2pTransport, load_peers


def main(argv: list[str]) -> int:
    key, port, peers = bytes.fromhex(argv[0]), int(argv[1]), load_peers(argv[2])
    transport = Libp2pTransport(key, "127.0.0.1", port, peers)

    def on_frame(sender: str, frame: bytes) -> None:
        try:
            transport.send(sender, b"echo:" + frame)
        except P2PError as exc:  # the link back may not be up yet; the test resends
            sys.stderr.write(f"echo to {sender} failed: {exc}\n")

    transport.start(on_frame, lambda _sender, data: b"re:" + data)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.read()  # until the parent closes our stdin
    transport.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
