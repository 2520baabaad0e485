# Cython's view of timestamps.py (an "augmenting .pxd"): C integers and a C-level dict lookup for
# the fast path in the compiled build. The .py stays the reference and the pure build; nothing
# here changes what it computes.
import cython

cdef dict _HOUR_MILLIS
cdef tuple _LAST_HOUR

@cython.locals(n=cython.Py_ssize_t, m1=cython.long, m2=cython.long, s1=cython.long, s2=cython.long,
               f1=cython.long, f2=cython.long, f3=cython.long, offset=cython.long, millis=cython.long,
               base=cython.longlong, last=tuple, prefix=str)
cpdef object _fast_canonical(str text)
