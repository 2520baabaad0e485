# Cython's view of batching.py (an "augmenting .pxd"): the items are C structs (items.pxd) and a
# Batch's choice is a typed function, so that building a Batch reads and writes fields and C
# integers, not dictionaries and Python ints. The .py stays the reference and the pure build;
# nothing here changes what it computes.
cimport cython
from recombee_cli.recombee.items cimport Item

# The request_kinds flags tested per request, as C ints (see items.pxd)
cdef long _SOLO, _KEY_OF_PART


cdef class Built:
    cdef public list batch
    cdef public set users
    cdef public set wholes
    cdef public set parts
    cdef public list dropped
    cdef public list kept
    cdef public Py_ssize_t scanned
    cdef public Py_ssize_t skipped
    cdef public object blocked
    cdef public object poisoned
    cdef public list kept_ready
    cdef public Py_ssize_t ready_scanned
    cdef public list parking


cdef object _decrement(dict counts, object key)
cdef bint _in_flight(list flying, object user)

# (SendQueue is a Python class: its methods' locals cannot be typed, a module function's can)
@cython.locals(position=Py_ssize_t, from_ready=Py_ssize_t, skipped=Py_ssize_t, known=Py_ssize_t, scanned=Py_ssize_t,
               whole=bint, go=bint, reusable=bint, users=tuple, wholes=tuple)
cpdef Built choose_batch(object queue, Py_ssize_t size, frozenset poisoned, Py_ssize_t limit=*)
