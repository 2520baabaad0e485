# Cython's view of timestamps.py (an "augmenting .pxd"): C-level dict lookups for the fast path
# in the compiled build. The .py stays the reference and the pure build; nothing here changes
# what it computes.
import cython

cdef dict _MINUTE_SECOND, _MILLIS, _HOUR_MILLIS

@cython.locals(n=cython.Py_ssize_t)
cpdef object _fast_canonical(str text)
