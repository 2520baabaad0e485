# Cython's view of mapcore.py (an "augmenting .pxd"): C types and C calls for the compiled build.
# The .py stays the reference and the pure build; nothing here changes what it computes.
import cython

cdef object _OFF_PATH

@cython.locals(i=cython.Py_ssize_t)
cdef inline object _walk(tuple keys, dict event)

@cython.locals(kind=cython.long)
cdef object _resolve(tuple node, dict event)

@cython.locals(stamp=tuple, first=tuple, second=tuple)
cpdef bint clocks_given(tuple stamps, dict event)

@cython.locals(at=cython.Py_ssize_t, stamp_at=cython.Py_ssize_t)
cdef list _build_add(tuple builder, list values, dict event)

cdef object _check_id(str name, object value)

@cython.locals(ch=cython.Py_UCS4)
cpdef bint id_chars_ok(str value)
