"""Contract of haperf._native.build: describes how the native modules were compiled.

It declares nothing for other modules to cimport; the build switches themselves live in
config.pxd so that every module reads the same macros.
"""
