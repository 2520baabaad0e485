# Cython's view of trigger_programs.py (an "augmenting .pxd"): C types and C calls for the compiled
# build. The .py stays the reference and the pure build; nothing here changes what it computes.
import cython

cdef object _UNREAD
cdef double _SAFE

@cython.locals(x=cython.double, sort=cython.int, group=tuple, test=tuple, tree=tuple)
cpdef tuple select(tuple program, dict event)

@cython.locals(parent=cython.Py_ssize_t)
cdef object _value(Py_ssize_t at, tuple reads, list values, dict event)

@cython.locals(kind=cython.long, x=cython.double, sort=cython.int)
cdef bint _passes(tuple test, tuple reads, list values, dict event) except -1

@cython.locals(kind=cython.long, n=cython.double)
cdef bint _leaf(tuple test, int sort, double x, object value) except -1

cdef object _test(dict node, dict known)
cdef object _group_test(dict node, dict known)
cdef tuple _fields(dict node)
cdef object _tree_test(dict tree, dict known)
cdef Py_ssize_t _read(list reads, dict index, Py_ssize_t parent, str key) except -2
@cython.locals(at=cython.Py_ssize_t)
cdef tuple _renumber(tuple test, list reads, dict index)
