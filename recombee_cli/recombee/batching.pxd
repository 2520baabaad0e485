# Cython's view of batching.py (an "augmenting .pxd"): the items as C structs for the compiled
# build, so that queueing a request and building a Batch read and write fields, not dictionaries.
# The .py stays the reference and the pure build; nothing here changes what it computes.
cimport cython

# The request_kinds flags tested per request, as C ints: a Python name was looked up, and an int
# made and and-ed, each time (about 0.5k instructions a request sent).
cdef long _SOLO, _KEY_OF_PART, _REMOVES, _SOURCE_GONE


@cython.no_gc   # an Item holds its ticket, body and route, none of which holds an Item: no cycle to find
cdef class Item:
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

    cdef object _fill(self, object ticket, object index, object body, object users, object flags, object key,
                      object sid, object enqueued, object part)


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

@cython.locals(index=cython.Py_ssize_t)
cpdef list queued_items(object ticket, list bodies, list routes, list codes, base, double enqueued)

@cython.locals(k=cython.Py_ssize_t, flags=cython.long)
cpdef object mark_gone_sources(list routes, dict gone)
