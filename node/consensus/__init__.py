"""QBFT consensus as a pure state machine: messages in, actions out (no I/O, threads or clock).

``messages`` is the signed wire format, ``blocks`` the seam to the application,
``qbft`` the per-height machine (rules of the EEA QBFT specification), ``finality``
the check a syncing node runs on a block and its commit seals, and ``sim`` a
deterministic in-memory network that drives several machines for tests.
"""
