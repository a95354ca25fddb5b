"""haperf.checksum: CRC32C (Castagnoli), the checksum of the WAL and the wire codec.

Owns the public names for checksumming. The functions are the compiled ones re-exported
unchanged, so a call costs what the native call costs (no Python wrapper in between).

    >>> from haperf.checksum import crc32c
    >>> hex(crc32c(b"123456789"))
    '0xe3069283'

Guarantees: identical results on every CPU (hardware and portable paths are tested against each
other and against a bit-by-bit reference); buffers are read in place, never copied; the GIL is
released for inputs of NOGIL_BYTES_MIN bytes and more.
"""

from haperf._native.crc32c import (
    NOGIL_BYTES_MIN,
    backend,
    crc32c,
    crc32c_combine,
    paths,
)

__all__ = ["NOGIL_BYTES_MIN", "backend", "crc32c", "crc32c_combine", "paths"]
