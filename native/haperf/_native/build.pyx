"""haperf._native.build: how the native code was compiled (build type, debug checks, compiler).

Owns the one place Python code learns whether HAPERF_DEBUG invariant checks are compiled in.
Invariant: the values are fixed at compile time; nothing here changes at run time.
"""

from haperf._native.config cimport (
    HAPERF_BUILD_TYPE,
    HAPERF_COMPILER,
    HAPERF_CYTHON_VERSION,
    HAPERF_DEBUG,
)

DEBUG = bool(HAPERF_DEBUG)
BUILD_TYPE = HAPERF_BUILD_TYPE.decode("ascii")
COMPILER = HAPERF_COMPILER.decode("utf-8", "replace").strip()
CYTHON_VERSION = HAPERF_CYTHON_VERSION.decode("ascii")


def info():
    """Return a dict describing the build: build_type, debug, compiler, cython."""
    return {
        "build_type": BUILD_TYPE,
        "debug": DEBUG,
        "compiler": COMPILER,
        "cython": CYTHON_VERSION,
    }
