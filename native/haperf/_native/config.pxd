"""Build-wide switches from haperf_config.h, for every native module.

Owns: HAPERF_DEBUG (a C macro, 0 or 1, so `if HAPERF_DEBUG:` costs nothing in release builds),
HAPERF_BUILD_TYPE, HAPERF_COMPILER and HAPERF_CYTHON_VERSION (strings for the bench header).
Header-only: no .pyx.
"""

cdef extern from "haperf_config.h":
    const bint HAPERF_DEBUG
    const char* HAPERF_BUILD_TYPE
    const char* HAPERF_COMPILER
    const char* HAPERF_CYTHON_VERSION
