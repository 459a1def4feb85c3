"""The client side: what vehicles, tests and benchmarks use to reach any chain.

A :class:`~node.client.chain.Chain` is one of eth-tester (embedded py-evm), our own
node over JSON-RPC, or any Ethereum node over JSON-RPC (anvil, Besu); the
:class:`~node.client.registry.KeyRegistry` binding, the transaction signer and the
revert decoder work the same on each.
"""
