"""The supervisor <-> child protocol: the only code both sides import."""

from corral.protocol.framing import MAX_FRAME_BYTES, LineSplitter, ProtocolError, decode, encode
from corral.protocol.messages import FROM_CHILD, PROTOCOL_VERSION, TO_CHILD

__all__ = [
    "FROM_CHILD",
    "MAX_FRAME_BYTES",
    "PROTOCOL_VERSION",
    "TO_CHILD",
    "LineSplitter",
    "ProtocolError",
    "decode",
    "encode",
]
