"""Solidity sources of qkdchain and their compiled artifacts.

The artifacts in ``contracts/build/`` are committed, so the package runs without a
compiler; :mod:`contracts.compiler` rebuilds them from source.
"""

from contracts.artifact import Artifact, ArtifactError, load_artifact

__all__ = ["Artifact", "ArtifactError", "load_artifact"]
