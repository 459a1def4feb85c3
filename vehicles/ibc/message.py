"""The signed message and its compact, versioned byte encoding.

Layout (version 1), all integers big-endian::

    version 1 | SID1 33 | SID2 32 | pk_V 33 | t_ms 8 | sigma 32 | len 4 | message len

Parsing is strict: every length, point and scalar is checked, and any defect is a
named :class:`vehicles.errors.MalformedEncoding`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from vehicles.errors import MalformedEncoding, UnsupportedVersion, WrongLength
from vehicles.ibc.authority import Pseudonym
from vehicles.ibc.curve import POINT_LEN, SCALAR_LEN, parse_point, parse_scalar, scalar_bytes

VERSION = 1
MAX_MESSAGE_LEN = 1 << 20
_HEADER = struct.Struct(f">B{POINT_LEN}s32s{POINT_LEN}sQ{SCALAR_LEN}sI")
HEADER_LEN = _HEADER.size


@dataclass(frozen=True)
class SignedMessage:
    pseudonym: Pseudonym
    pk_v: bytes
    timestamp_ms: int
    sigma: int
    message: bytes

    def encode(self) -> bytes:
        return (
            _HEADER.pack(
                VERSION,
                self.pseudonym.sid1,
                self.pseudonym.sid2,
                self.pk_v,
                self.timestamp_ms,
                scalar_bytes(self.sigma),
                len(self.message),
            )
            + self.message
        )

    @classmethod
    def decode(cls, data: bytes) -> SignedMessage:
        """Parse an encoding.

        Raises:
            UnsupportedVersion, WrongLength, InvalidPoint, ScalarOutOfRange,
            MalformedEncoding (all :class:`MalformedEncoding`).
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise MalformedEncoding(f"expected bytes, got {type(data).__name__}")
        data = bytes(data)
        if len(data) < 1:
            raise WrongLength("signed message", HEADER_LEN, 0)
        if data[0] != VERSION:
            raise UnsupportedVersion(data[0])
        if len(data) < HEADER_LEN:
            raise WrongLength("signed message header", HEADER_LEN, len(data))
        _, sid1, sid2, pk_v, t_ms, sigma, length = _HEADER.unpack_from(data)
        if length > MAX_MESSAGE_LEN:
            raise MalformedEncoding(f"message length {length} exceeds {MAX_MESSAGE_LEN}")
        if len(data) != HEADER_LEN + length:
            raise WrongLength("signed message", HEADER_LEN + length, len(data))
        parse_point(sid1, "SID1")
        parse_point(pk_v, "pk_V")
        return cls(Pseudonym(sid1, sid2), pk_v, t_ms, parse_scalar(sigma, "sigma"), data[HEADER_LEN:])
