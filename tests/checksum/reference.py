"""Slow, obviously-correct CRC32C references written from the definition, for tests only.

Owns crc32c_bitwise (one bit at a time, straight from the reflected-polynomial definition) and
crc32c_prefixes (the same register, table-driven, yielding the CRC of every prefix in one pass so
exhaustive length tests stay fast). The table is itself checked against the bitwise form.
"""

from collections.abc import Iterator

POLY_REFLECTED = 0x82F63B78
MASK32 = 0xFFFFFFFF


def crc32c_bitwise(data: bytes, value: int = 0) -> int:
    reg = value ^ MASK32
    for byte in data:
        reg ^= byte
        for _ in range(8):
            reg = (reg >> 1) ^ (POLY_REFLECTED if reg & 1 else 0)
    return reg ^ MASK32


def _table() -> list[int]:
    table = []
    for byte in range(256):
        reg = byte
        for _ in range(8):
            reg = (reg >> 1) ^ (POLY_REFLECTED if reg & 1 else 0)
        table.append(reg)
    return table


TABLE = _table()


def crc32c_prefixes(data: bytes, value: int = 0) -> Iterator[int]:
    """Yield crc32c(data[:k], value) for k = 0, 1, ..., len(data)."""
    reg = value ^ MASK32
    yield reg ^ MASK32
    for byte in data:
        reg = (reg >> 8) ^ TABLE[(reg ^ byte) & 0xFF]
        yield reg ^ MASK32
