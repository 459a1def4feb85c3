"""QKD engine: BB84 simulation and post-processing."""
