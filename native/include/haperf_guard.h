/* haperf_guard.h: the vectorcall entry of haperf's sync decorator wrappers.

   Owns haperf_guard_vectorcall, which a Cython guard installs as its vectorcall slot. It calls
   the guard's body (a Cython function, reached through the pointer the module sets at import)
   and, when the body reports a rejection, raises the rejection error here, in C. An error that
   leaves a Cython function gets a traceback entry (a new frame object) on its way out; raising
   it from C instead makes a rejection cost one frame less, and a breaker's rejections are
   meant to be cheap.

   Invariants: the body returns a new reference. With *rejected set, that reference is the
   error instance to raise and the body has not set any exception; otherwise NULL means an
   exception is set, anything else is the call's result. */
#ifndef HAPERF_GUARD_H
#define HAPERF_GUARD_H

#include <Python.h>

typedef PyObject *(*haperf_guard_body_fn)(PyObject *self, PyObject *const *args, size_t nargsf,
                                          PyObject *kwnames, int *rejected);

static haperf_guard_body_fn haperf_guard_body = NULL;

static PyObject *haperf_guard_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf,
                                         PyObject *kwnames) {
    int rejected = 0;
    PyObject *out = haperf_guard_body(self, args, nargsf, kwnames, &rejected);
    if (out != NULL && rejected) {
        PyErr_SetObject((PyObject *)Py_TYPE(out), out);
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

#endif /* HAPERF_GUARD_H */
