/* haperf_config.h: build-wide switches shared by every native module.
 *
 * Owns HAPERF_DEBUG (invariant checks on or off), HAPERF_BUILD_TYPE (the CMake build type) and
 * HAPERF_CYTHON_VERSION, which `python -m haperf bench` reports. CMake defines all three for
 * every module; the defaults here only apply when a file is compiled by hand.
 */
#ifndef HAPERF_CONFIG_H
#define HAPERF_CONFIG_H

#ifndef HAPERF_DEBUG
#define HAPERF_DEBUG 0
#endif

#ifndef HAPERF_BUILD_TYPE
#define HAPERF_BUILD_TYPE "unknown"
#endif

#ifndef HAPERF_CYTHON_VERSION
#define HAPERF_CYTHON_VERSION "unknown"
#endif

/* The compiler's own description of itself, for the bench machine header. */
#if defined(__clang__)
#define HAPERF_COMPILER "clang " __clang_version__
#elif defined(__GNUC__)
#define HAPERF_COMPILER "gcc " __VERSION__
#elif defined(_MSC_VER)
#define HAPERF_STR2(x) #x
#define HAPERF_STR(x) HAPERF_STR2(x)
#define HAPERF_COMPILER "msvc " HAPERF_STR(_MSC_VER)
#else
#define HAPERF_COMPILER "unknown"
#endif

#endif /* HAPERF_CONFIG_H */
