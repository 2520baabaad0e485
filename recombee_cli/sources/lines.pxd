# Cython's view of lines.py (an "augmenting .pxd"): cutting lines by C's memchr in the compiled
# build, where a call of bytes.find per line cost more than the line's bytes. The .py stays the
# reference and the pure build; nothing here changes what it computes.
import cython

ctypedef const unsigned char* cbytes

cdef extern from *:
    """
    #include <string.h>
    /* The index of the first newline in p[i:n], or -1 (what bytes.find(b"\\n", i) gives). */
    static inline Py_ssize_t lines_newline(const unsigned char *p, Py_ssize_t n, Py_ssize_t i) {
        const unsigned char *at = i < n ? (const unsigned char *)memchr(p + i, 0x0A, (size_t)(n - i)) : NULL;
        return at ? (Py_ssize_t)(at - p) : -1;
    }
    """
    Py_ssize_t _newline "lines_newline" (cbytes p, Py_ssize_t n, Py_ssize_t i) noexcept

cdef bint _FAST

@cython.locals(p=cbytes, n=cython.Py_ssize_t, start=cython.Py_ssize_t, end=cython.Py_ssize_t, lines=list)
cpdef list cut_lines(bytes data)
