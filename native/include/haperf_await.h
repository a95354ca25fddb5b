/* haperf_await.h: a C awaitable that runs policy hooks around an awaited coroutine.

   Owns the type behind haperf's async decorators (the circuit breaker's AsyncGuard, the first
   attempt of AsyncRetryGuard). Awaiting a guarded call must cost close to awaiting the bare
   coroutine, so instead of a second coroutine frame the wrapper is one small object whose
   am_send slot forwards to the wrapped coroutine with PyIter_Send, and calls three hooks
   written in Cython:
     enter      when first sent to (a breaker takes its permit at await time, not creation);
     result     when the coroutine returns;
     exception  when it raises, or is closed / dropped while in flight (exc NULL).
   A hook returns 0, or -1 with an exception set, which then replaces the outcome. The result
   and exception hooks may instead hand over a new coroutine in *next (a retry's slow path):
   the awaitable then delegates to it, untouched, until it finishes.

   Invariants: state goes NEW -> RUNNING -> (DELEGATING ->) DONE, never back; enter runs at
   most once and exactly one of result / exception runs after it (dealloc reports a call still
   RUNNING as abandoned); values the coroutines yield are passed through untouched; the object
   holds the only extra references (policy, coroutine, fn, args, kwargs), released in dealloc
   and by the GC. */
#ifndef HAPERF_AWAIT_H
#define HAPERF_AWAIT_H

#include <Python.h>
#include <stdint.h>

struct haperf_await_s;

typedef int (*haperf_await_enter_fn)(struct haperf_await_s *a);
typedef int (*haperf_await_result_fn)(struct haperf_await_s *a, PyObject *result,
                                      PyObject **next);
typedef int (*haperf_await_exception_fn)(struct haperf_await_s *a, PyObject *exc,
                                         PyObject **next);

typedef struct {
    haperf_await_enter_fn enter;
    haperf_await_result_fn result;
    haperf_await_exception_fn exception;
} haperf_await_hooks;

enum {
    HAPERF_AWAIT_NEW = 0,
    HAPERF_AWAIT_RUNNING = 1,
    HAPERF_AWAIT_DONE = 2,
    HAPERF_AWAIT_DELEGATING = 3
};

typedef struct haperf_await_s {
    PyObject_HEAD
    PyObject *policy;
    PyObject *coro;
    PyObject *fn;     /* what a hook may need to call again (NULL when unused) */
    PyObject *args;
    PyObject *kwargs;
    const haperf_await_hooks *hooks;
    int64_t start_ns;
    uint64_t epoch;
    int state;
} haperf_await;

/* Fetch the raised exception as one normalized object (traceback attached); NULL if none. */
static PyObject *haperf_await_fetch(void) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (type == NULL) {
        return NULL;
    }
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL) {
        PyException_SetTraceback(value, tb);
        Py_DECREF(tb);
    }
    Py_DECREF(type);
    return value;
}

/* Re-raise an exception object taken by haperf_await_fetch (steals the reference). */
static void haperf_await_restore(PyObject *exc) {
    PyObject *tb = PyException_GetTraceback(exc);
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, tb);
}

/* The wrapped coroutine stopped with `status` (PYGEN_RETURN with *presult, or PYGEN_ERROR with
   an exception set): run the hook, and follow a coroutine it hands over, until something is
   yielded or the whole call has finished. */
static PySendResult haperf_await_settle(haperf_await *a, PySendResult status,
                                        PyObject **presult) {
    PyObject *next, *exc;
    while (status != PYGEN_NEXT && a->state == HAPERF_AWAIT_RUNNING) {
        next = NULL;
        if (status == PYGEN_RETURN) {
            if (a->hooks->result(a, *presult, &next) < 0) {
                a->state = HAPERF_AWAIT_DONE;
                Py_CLEAR(*presult);
                return PYGEN_ERROR;
            }
            if (next == NULL) {
                a->state = HAPERF_AWAIT_DONE;
                return PYGEN_RETURN;
            }
            Py_CLEAR(*presult);
        } else {
            exc = haperf_await_fetch();
            if (exc == NULL) {
                a->state = HAPERF_AWAIT_DONE;
                return PYGEN_ERROR;
            }
            if (a->hooks->exception(a, exc, &next) < 0) {
                a->state = HAPERF_AWAIT_DONE;
                Py_DECREF(exc);
                return PYGEN_ERROR;
            }
            if (next == NULL) {
                a->state = HAPERF_AWAIT_DONE;
                haperf_await_restore(exc);
                *presult = NULL;
                return PYGEN_ERROR;
            }
            Py_DECREF(exc);
        }
        Py_SETREF(a->coro, next);
        a->state = HAPERF_AWAIT_DELEGATING;
        status = PyIter_Send(a->coro, Py_None, presult);
    }
    if (status != PYGEN_NEXT) {
        a->state = HAPERF_AWAIT_DONE;
    }
    return status;
}

static int haperf_await_enter(haperf_await *a) {
    PyObject *exc, *closed;
    if (a->state == HAPERF_AWAIT_RUNNING || a->state == HAPERF_AWAIT_DELEGATING) {
        return 0;
    }
    if (a->state == HAPERF_AWAIT_DONE) {
        PyErr_SetString(PyExc_RuntimeError, "cannot reuse an already awaited guarded call");
        return -1;
    }
    if (a->hooks->enter(a) < 0) {
        /* Rejected: the wrapped coroutine never runs; close it so it does not warn. */
        a->state = HAPERF_AWAIT_DONE;
        exc = haperf_await_fetch();
        closed = PyObject_CallMethod(a->coro, "close", NULL);
        Py_XDECREF(closed);
        if (closed == NULL) {
            Py_XDECREF(exc);
            return -1;
        }
        haperf_await_restore(exc);
        return -1;
    }
    a->state = HAPERF_AWAIT_RUNNING;
    return 0;
}

static PySendResult haperf_await_am_send(PyObject *self, PyObject *arg, PyObject **presult) {
    haperf_await *a = (haperf_await *)self;
    if (haperf_await_enter(a) < 0) {
        *presult = NULL;
        return PYGEN_ERROR;
    }
    return haperf_await_settle(a, PyIter_Send(a->coro, arg, presult), presult);
}

/* Turn a send result into the iterator protocol: a yielded value, or NULL with StopIteration
   (carrying the return value) or the error set. */
static PyObject *haperf_await_as_iter(PySendResult status, PyObject *result) {
    PyObject *stop;
    if (status == PYGEN_NEXT) {
        return result;
    }
    if (status == PYGEN_RETURN) {
        if (result == Py_None) {
            Py_DECREF(result);
            PyErr_SetNone(PyExc_StopIteration);
            return NULL;
        }
        stop = PyObject_CallOneArg(PyExc_StopIteration, result);
        Py_DECREF(result);
        if (stop != NULL) {
            PyErr_SetObject(PyExc_StopIteration, stop);
            Py_DECREF(stop);
        }
    }
    return NULL;
}

static PyObject *haperf_await_iternext(PyObject *self) {
    PyObject *result = NULL;
    PySendResult status = haperf_await_am_send(self, Py_None, &result);
    if (status == PYGEN_RETURN && result == Py_None) {
        /* tp_iternext may end with no exception set: StopIteration(None) is implied. */
        Py_DECREF(result);
        return NULL;
    }
    return haperf_await_as_iter(status, result);
}

static PyObject *haperf_await_send(PyObject *self, PyObject *arg) {
    PyObject *result = NULL;
    PySendResult status = haperf_await_am_send(self, arg, &result);
    return haperf_await_as_iter(status, result);
}

static PyObject *haperf_await_throw(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    haperf_await *a = (haperf_await *)self;
    PyObject *method, *result, *exc, *value = NULL;
    PySendResult status;
    int was_new = a->state == HAPERF_AWAIT_NEW;
    method = PyObject_GetAttrString(a->coro, "throw");
    if (method == NULL) {
        return NULL;
    }
    if (was_new) {
        /* Thrown into before it started: the call never ran, so no hook runs. */
        a->state = HAPERF_AWAIT_DONE;
    }
    result = PyObject_Vectorcall(method, args, (size_t)nargs, NULL);
    Py_DECREF(method);
    if (result != NULL) {
        return result; /* the coroutine yielded again */
    }
    if (a->state == HAPERF_AWAIT_DONE) {
        return NULL;
    }
    if (PyErr_ExceptionMatches(PyExc_StopIteration)) {
        /* The coroutine caught what was thrown in and returned: a result. */
        exc = haperf_await_fetch();
        value = Py_NewRef(((PyStopIterationObject *)exc)->value);
        Py_DECREF(exc);
        status = PYGEN_RETURN;
    } else {
        status = PYGEN_ERROR;
    }
    status = haperf_await_settle(a, status, &value);
    return haperf_await_as_iter(status, value);
}

/* Report a call that will never finish (closed or dropped while RUNNING). */
static int haperf_await_abandon(haperf_await *a) {
    PyObject *next = NULL;
    int rc = a->hooks->exception(a, NULL, &next);
    Py_XDECREF(next);
    return rc;
}

static PyObject *haperf_await_close(PyObject *self, PyObject *unused) {
    haperf_await *a = (haperf_await *)self;
    PyObject *closed;
    int was_running = a->state == HAPERF_AWAIT_RUNNING;
    (void)unused;
    a->state = HAPERF_AWAIT_DONE;
    closed = PyObject_CallMethod(a->coro, "close", NULL);
    if (closed == NULL) {
        return NULL;
    }
    Py_DECREF(closed);
    if (was_running && haperf_await_abandon(a) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *haperf_await_await(PyObject *self) {
    return Py_NewRef(self);
}

static int haperf_await_traverse(PyObject *self, visitproc visit, void *arg) {
    haperf_await *a = (haperf_await *)self;
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(a->policy);
    Py_VISIT(a->coro);
    Py_VISIT(a->fn);
    Py_VISIT(a->args);
    Py_VISIT(a->kwargs);
    return 0;
}

static int haperf_await_clear(PyObject *self) {
    haperf_await *a = (haperf_await *)self;
    Py_CLEAR(a->policy);
    Py_CLEAR(a->coro);
    Py_CLEAR(a->fn);
    Py_CLEAR(a->args);
    Py_CLEAR(a->kwargs);
    return 0;
}

/* Freed objects kept for reuse, so a guarded call usually costs no allocation. Each module that
   includes this header has its own type and its own list. Under the GIL only: a free-threaded
   build allocates every time. */
#ifndef Py_GIL_DISABLED
#define HAPERF_AWAIT_FREELIST_MAX 64
static haperf_await *haperf_await_freelist[HAPERF_AWAIT_FREELIST_MAX];
static int haperf_await_freelist_len = 0;
#endif

static void haperf_await_dealloc(PyObject *self) {
    haperf_await *a = (haperf_await *)self;
    PyTypeObject *type = Py_TYPE(self);
    PyObject *type_, *value, *tb;
    PyObject_GC_UnTrack(self);
    if (a->state == HAPERF_AWAIT_RUNNING && a->policy != NULL) {
        /* Dropped mid-flight (its task was destroyed): give the permit back. */
        a->state = HAPERF_AWAIT_DONE;
        PyErr_Fetch(&type_, &value, &tb);
        if (haperf_await_abandon(a) < 0) {
            PyErr_WriteUnraisable(self);
        }
        PyErr_Restore(type_, value, tb);
    }
    haperf_await_clear(self);
#ifndef Py_GIL_DISABLED
    if (haperf_await_freelist_len < HAPERF_AWAIT_FREELIST_MAX) {
        haperf_await_freelist[haperf_await_freelist_len++] = a;
        Py_DECREF(type);
        return;
    }
#endif
    PyObject_GC_Del(self);
    Py_DECREF(type);
}

static PyMethodDef haperf_await_methods[] = {
    {"send", (PyCFunction)haperf_await_send, METH_O, "Send a value into the wrapped coroutine."},
    {"throw", (PyCFunction)(void (*)(void))haperf_await_throw, METH_FASTCALL,
     "Throw an exception into the wrapped coroutine."},
    {"close", (PyCFunction)haperf_await_close, METH_NOARGS, "Close the wrapped coroutine."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot haperf_await_slots[] = {
    {Py_am_await, (void *)haperf_await_await},
    {Py_am_send, (void *)haperf_await_am_send},
    {Py_tp_iter, (void *)haperf_await_await},
    {Py_tp_iternext, (void *)haperf_await_iternext},
    {Py_tp_methods, (void *)haperf_await_methods},
    {Py_tp_traverse, (void *)haperf_await_traverse},
    {Py_tp_clear, (void *)haperf_await_clear},
    {Py_tp_dealloc, (void *)haperf_await_dealloc},
    {Py_tp_doc, (void *)"A guarded call: await it once, like the coroutine it wraps."},
    {0, NULL},
};

static PyType_Spec haperf_await_spec = {
    "haperf._native.GuardedCall",
    sizeof(haperf_await),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    haperf_await_slots,
};

/* The awaitable type (a new reference), created once per module that uses it. */
static PyObject *haperf_await_type_new(void) {
    return PyType_FromSpec(&haperf_await_spec);
}

/* A new guarded call of `coro` (a new reference). fn, args and kwargs may be NULL. */
static PyObject *haperf_await_new(PyObject *type, PyObject *policy, PyObject *coro,
                                  PyObject *fn, PyObject *args, PyObject *kwargs,
                                  const haperf_await_hooks *hooks) {
    haperf_await *a;
#ifndef Py_GIL_DISABLED
    if (haperf_await_freelist_len > 0) {
        /* A freed object of this module's type: PyObject_Init gives it a new reference count
           and takes the reference to the heap type again; it is untracked, as dealloc left it. */
        a = haperf_await_freelist[--haperf_await_freelist_len];
        (void)PyObject_Init((PyObject *)a, (PyTypeObject *)type);
    } else
#endif
    {
        a = PyObject_GC_New(haperf_await, (PyTypeObject *)type);
        if (a == NULL) {
            return NULL;
        }
    }
    /* The object holds a reference to the heap type, given back by dealloc. */
    a->policy = Py_NewRef(policy);
    a->coro = Py_NewRef(coro);
    a->fn = Py_XNewRef(fn);
    a->args = Py_XNewRef(args);
    a->kwargs = Py_XNewRef(kwargs);
    a->hooks = hooks;
    a->start_ns = -1;
    a->epoch = 0;
    a->state = HAPERF_AWAIT_NEW;
    PyObject_GC_Track((PyObject *)a);
    return (PyObject *)a;
}

#endif /* HAPERF_AWAIT_H */
