"""Identity-based pseudonym signatures (seed 002, eq. 1-7 and 10, as in DESIGN.md)."""

from vehicles.ibc.authority import Credential, Pseudonym, TrustedAuthority
from vehicles.ibc.batch import batch_verify, find_invalid
from vehicles.ibc.message import SignedMessage
from vehicles.ibc.revocation import RegistryRevocationList, RevocationList, RevocationSource
from vehicles.ibc.signature import sign, verify_signature
from vehicles.ibc.verifier import Verifier

__all__ = [
    "Credential",
    "Pseudonym",
    "RegistryRevocationList",
    "RevocationList",
    "RevocationSource",
    "SignedMessage",
    "TrustedAuthority",
    "Verifier",
    "batch_verify",
    "find_invalid",
    "sign",
    "verify_signature",
]
