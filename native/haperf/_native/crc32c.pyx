"""haperf._native.crc32c: CRC32C over any buffer, SSE4.2 when the CPU has it, slicing-by-8 if not.

Owns the Python entry points over haperf_crc32c.h: crc32c (dispatching), crc32c_path and
crc32c_portable (one path forced, for tests and benchmarks), paths, backend, crc32c_combine, and
the private instruction-throughput floor used by `python -m haperf bench`.

Invariants:
- A buffer is never copied. bytes are read in place; anything else goes through the buffer
  protocol with PyBUF_SIMPLE, so only C-contiguous memory is accepted.
- The GIL is released only for inputs of at least NOGIL_BYTES_MIN bytes and only while the
  buffer export (or the bytes reference) is held, so no other thread can resize or free it.
- `value` is a finished CRC in [0, 2**32); anything else is a TypeError or ValueError that says
  what was passed, and nothing is computed.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_GET_SIZE
from libc.stdint cimport uint32_t, uint64_t

from haperf._native.crc32c cimport (
    HAPERF_CRC32C_PATH_AUTO,
    HAPERF_CRC32C_PATH_PCLMUL,
    HAPERF_CRC32C_PATH_PORTABLE,
    HAPERF_CRC32C_PATH_SSE42,
    HAPERF_CRC32C_PATH_AVX512,
    crc32c_extend,
    crc32c_init,
    haperf_crc32c_backend_name,
    haperf_crc32c_combine,
    haperf_crc32c_extend_path,
    haperf_crc32c_hardware,
    haperf_crc32c_limit,
    haperf_crc32c_path_available,
)

crc32c_init()

# Below this size, releasing and re-taking the GIL (about 0.1 us) costs more than the checksum
# itself (16 KiB take well under a microsecond on the hardware paths), so small inputs keep it.
NOGIL_BYTES_MIN = 16384
cdef Py_ssize_t _nogil_bytes_min = NOGIL_BYTES_MIN

# Path names, in order from the most portable to the fastest; backend() returns one of them.
_PATH_IDS = {
    "slicing-by-8": HAPERF_CRC32C_PATH_PORTABLE,
    "sse4.2": HAPERF_CRC32C_PATH_SSE42,
    "pclmulqdq": HAPERF_CRC32C_PATH_PCLMUL,
    "avx512-vpclmulqdq": HAPERF_CRC32C_PATH_AVX512,
}


cdef inline uint32_t _run(int path, uint32_t crc, const void* p, size_t n) noexcept nogil:
    if path == HAPERF_CRC32C_PATH_AUTO:
        # The same inline API other native modules cimport, so it is exercised on every call.
        return crc32c_extend(crc, p, n)
    return haperf_crc32c_extend_path(path, crc, p, n)


cdef uint32_t _crc_arg(object value, str name) except? 0xFFFFFFFF:
    if not isinstance(value, int):
        raise TypeError(
            f"{name} must be an int CRC32C in 0..0xFFFFFFFF, got {type(value).__name__}"
        )
    if value < 0 or value > 0xFFFFFFFF:
        raise ValueError(f"{name} must be a CRC32C in 0..0xFFFFFFFF, got {value!r}")
    return <uint32_t>value


cdef object _checksum(object data, object value, int path):
    cdef uint32_t crc = 0
    cdef uint32_t result
    cdef const char* p
    cdef Py_ssize_t n
    cdef Py_buffer view
    if value is not 0:
        crc = _crc_arg(value, "value")
    if PyBytes_CheckExact(data):
        # bytes are immutable and `data` holds a reference for the whole call.
        p = PyBytes_AS_STRING(data)
        n = PyBytes_GET_SIZE(data)
        if n < _nogil_bytes_min:
            return _run(path, crc, p, <size_t>n)
        with nogil:
            result = _run(path, crc, p, <size_t>n)
        return result
    try:
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    except BufferError as err:
        raise ValueError(
            f"crc32c needs a C-contiguous buffer, got a non-contiguous {type(data).__name__} "
            f"({err}); pass bytes(x) or numpy.ascontiguousarray(x)"
        ) from err
    try:
        if view.len < _nogil_bytes_min:
            result = _run(path, crc, view.buf, <size_t>view.len)
        else:
            with nogil:
                result = _run(path, crc, view.buf, <size_t>view.len)
    finally:
        PyBuffer_Release(&view)
    return result


def crc32c(data, value=0):
    """Return the CRC32C of `data` (any C-contiguous buffer), continuing from `value`.

    `value` is a previous result, so crc32c(b, crc32c(a)) == crc32c(a + b). Uses the fastest
    path this CPU offers (see backend() and paths()).
    """
    return _checksum(data, value, HAPERF_CRC32C_PATH_AUTO)


def crc32c_portable(data, value=0):
    """crc32c() forced onto the portable slicing-by-8 path (same result, for tests and bench)."""
    return _checksum(data, value, HAPERF_CRC32C_PATH_PORTABLE)


def crc32c_path(str name, data, value=0):
    """crc32c() forced onto the named path (one of paths()); ValueError for any other name."""
    path = _PATH_IDS.get(name)
    if path is None or not haperf_crc32c_path_available(path):
        raise ValueError(
            f"unknown crc32c path {name!r} on this CPU; available: {', '.join(paths())}"
        )
    return _checksum(data, value, path)


def paths():
    """Names of the implementations this CPU can run, most portable first."""
    return [name for name, path in _PATH_IDS.items() if haperf_crc32c_path_available(path)]


def crc32c_combine(crc_a, crc_b, len_b):
    """Return crc32c(a + b) from crc_a = crc32c(a), crc_b = crc32c(b) and len_b = len(b).

    Costs O(log len_b) polynomial multiplications; no data is read.
    """
    cdef uint32_t a = _crc_arg(crc_a, "crc_a")
    cdef uint32_t b = _crc_arg(crc_b, "crc_b")
    if not isinstance(len_b, int):
        raise TypeError(f"len_b must be an int byte count, got {type(len_b).__name__}")
    if len_b < 0 or len_b >= 2**64:
        raise ValueError(f"len_b must be in 0..2**64-1, got {len_b!r}")
    return haperf_crc32c_combine(a, b, <uint64_t>len_b)


def backend():
    """Name of the path crc32c() chose on this CPU (one of paths())."""
    return haperf_crc32c_backend_name().decode("ascii")


def _instruction_floor(data, int streams):
    """Benchmark floor: `streams` independent chains of crc32 instructions over `data`.

    Not a checksum. Returns None when the CPU has no crc32 instruction. streams is 1, 3 or 4.
    """
    cdef Py_buffer view
    cdef uint64_t out
    if streams not in (1, 3, 4):
        raise ValueError(f"streams must be 1, 3 or 4, got {streams}")
    if not haperf_crc32c_hardware():
        return None
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        with nogil:
            out = haperf_crc32c_limit(<const unsigned char*>view.buf, <size_t>view.len, streams)
    finally:
        PyBuffer_Release(&view)
    return out
