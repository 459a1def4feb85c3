"""Real Ethereum clients (ethers, viem, Foundry cast) against our node and anvil side by side."""
