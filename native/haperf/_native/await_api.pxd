"""Declarations of the C awaitable (native/include/haperf_await.h) and the CPython calls around it.

Header-only: the breaker and retry modules both build their async guards on haperf_await, so its
declarations live here once and each module cimports them. Invariant: these mirror the C header
and Python.h exactly; a field used from Cython must exist in the C struct.
"""

from libc.stdint cimport int64_t, uint64_t


cdef extern from "Python.h":
    ctypedef struct PyObject
    ctypedef struct PyTypeObject:
        unsigned long tp_flags
        Py_ssize_t tp_vectorcall_offset
    ctypedef object (*vectorcallfunc)(object, PyObject* const*, size_t, PyObject*)
    object PyMethod_New(object func, object self)
    object PyObject_Vectorcall(object fn, PyObject* const* args, size_t nargsf, PyObject* kwnames)
    object PyVectorcall_Call(object callable, object args, object kwargs)
    Py_ssize_t PyVectorcall_NARGS(size_t nargsf)
    void PyType_Modified(PyTypeObject* t)
    unsigned long Py_TPFLAGS_HAVE_VECTORCALL
    PyObject* PyTuple_New(Py_ssize_t n) except NULL
    void Py_DECREF_ "Py_DECREF"(PyObject* o)
    void PyTuple_SET_ITEM(PyObject* t, Py_ssize_t i, PyObject* o)
    void Py_INCREF(PyObject* o)


cdef extern from "haperf_await.h":
    ctypedef struct haperf_await:
        PyObject* policy
        PyObject* fn
        PyObject* args
        PyObject* kwargs
        int64_t start_ns
        uint64_t epoch
    ctypedef int (*haperf_await_enter_fn)(haperf_await*) except -1
    ctypedef int (*haperf_await_result_fn)(haperf_await*, PyObject*, PyObject**) except -1
    ctypedef int (*haperf_await_exception_fn)(haperf_await*, PyObject*, PyObject**) except -1
    ctypedef struct haperf_await_hooks:
        haperf_await_enter_fn enter
        haperf_await_result_fn result
        haperf_await_exception_fn exception
    object haperf_await_type_new()
    object haperf_await_new(object type, object policy, object coro, PyObject* fn,
                            PyObject* args, PyObject* kwargs, const haperf_await_hooks* hooks)
