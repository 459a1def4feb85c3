"""The validator network's transport: frames and requests between nodes named by address.

:mod:`node.p2p.transport` states the seam; :mod:`node.p2p.memory` implements it in
process (with fault injection, for tests) and :mod:`node.p2p.libp2p` over py-libp2p.
"""
