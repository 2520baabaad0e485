# Cython's view of items.py (an "augmenting .pxd"): an Item as a C struct for the compiled build, so
# that queueing a request and building a Batch read and write fields, not dictionaries (batching.pxd
# and sender.pxd cimport it). The .py stays the reference and the pure build; nothing here changes
# what it computes.
cimport cython

# The request_kinds flags tested per request, as C ints: a Python name was looked up, and an int
# made and and-ed, each time (about 0.5k instructions a request sent).
cdef long _SOLO, _REMOVES, _SOURCE_GONE


cdef class Item:   # (no_gc: items.py says it, as Cython ignores a class decorator in a .pxd)
    cdef public object ticket
    cdef public Py_ssize_t index
    cdef public object body
    cdef public tuple users
    cdef public int flags
    cdef public object key
    cdef public object sid
    cdef public double enqueued
    cdef public bint whole
    cdef public tuple wholes
    cdef public object pair
    cdef public Py_ssize_t seq
    cdef public bint held

    # (C arguments: an Item's index, flags and time were made Python objects, then read back)
    cdef object _fill(self, object ticket, Py_ssize_t index, object body, tuple users, int flags, object key,
                      object sid, double enqueued, object part)


@cython.locals(index=cython.Py_ssize_t)
cpdef list queued_items(object ticket, list bodies, list routes, list codes, base, double enqueued)

@cython.locals(k=cython.Py_ssize_t, flags=cython.long)
cpdef object mark_gone_sources(list routes, dict gone)
