"""Stub for haperf._native.build: how the native code was compiled."""

from typing import Final, TypedDict

class BuildInfo(TypedDict):
    build_type: str
    debug: bool
    compiler: str
    cython: str

DEBUG: Final[bool]
BUILD_TYPE: Final[str]
COMPILER: Final[str]
CYTHON_VERSION: Final[str]

def info() -> BuildInfo: ...
