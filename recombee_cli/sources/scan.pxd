# Cython's view of scan.py (an "augmenting .pxd"): C types and C calls for the compiled build, so
# that the loops over a line's bytes are C loops. The .py stays the reference and the pure build;
# nothing here changes what it computes.
import cython

ctypedef const unsigned char* cbytes

cdef object _SKIP
cdef int MAX_DEPTH, MAX_NUMBER
cdef bint _FAST

cdef extern from *:
    """
    /* The first index from i on whose byte a string's loop stops at (_STRING_STOPS: the quote,
       the backslash, below 0x20, 0x80 and up), looking sixteen bytes a step while sixteen are
       left; else the index where fewer are left. As a signed byte, 0x80 and up are below 0x20
       too, so one comparison finds both. Without SSE2, nothing is skipped. */
    #if defined(__SSE2__)
    #include <emmintrin.h>
    static inline Py_ssize_t scan_plain16(const unsigned char *p, Py_ssize_t n, Py_ssize_t i) {
        const __m128i quote = _mm_set1_epi8(0x22), backslash = _mm_set1_epi8(0x5C), low = _mm_set1_epi8(0x20);
        while (i + 16 <= n) {
            __m128i v = _mm_loadu_si128((const __m128i *)(p + i));
            __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                                       _mm_cmplt_epi8(v, low));
            int bits = _mm_movemask_epi8(hit);
            if (bits)
                return i + __builtin_ctz((unsigned int)bits);
            i += 16;
        }
        return i;
    }
    #else
    static inline Py_ssize_t scan_plain16(const unsigned char *p, Py_ssize_t n, Py_ssize_t i) { (void)p; (void)n; return i; }
    #endif
    """
    Py_ssize_t _plain16 "scan_plain16" (cbytes p, Py_ssize_t n, Py_ssize_t i) noexcept

cdef extern from *:
    """
    /* A restricted line is written into one bytearray made with room for the whole line (the
       part is never longer): each piece is one copy, where a list of slices joined at the end
       made and freed an object a piece and copied every byte twice. */
    static inline PyObject *scan_empty_room(Py_ssize_t n) {
        PyObject *out = PyByteArray_FromStringAndSize(NULL, n);
        if (out != NULL) {
            Py_SET_SIZE(out, 0);
            PyByteArray_AS_STRING(out)[0] = '\0';
        }
        return out;
    }
    static inline int scan_append(PyObject *out, const unsigned char *p, Py_ssize_t start, Py_ssize_t end) {
        Py_ssize_t size = PyByteArray_GET_SIZE(out), k = end - start;
        if (size + k >= ((PyByteArrayObject *)out)->ob_alloc) {   /* no room (never, from restrict) */
            if (PyByteArray_Resize(out, size + k) < 0)
                return -1;
        } else {
            Py_SET_SIZE(out, size + k);
        }
        char *s = PyByteArray_AS_STRING(out);
        memcpy(s + size, p + start, (size_t)k);
        s[size + k] = '\0';
        return 0;
    }
    """
    bytearray _empty_room "scan_empty_room" (Py_ssize_t n)
    int _append "scan_append" (bytearray out, cbytes p, Py_ssize_t start, Py_ssize_t end) except -1

cdef bytearray _room(Py_ssize_t n)

cdef int _put(bytearray out, cbytes p, Py_ssize_t start, Py_ssize_t end) except -1

@cython.locals(n=cython.Py_ssize_t, i=cython.Py_ssize_t)
cpdef object restrict(bytes data, tuple reads)

@cython.locals(slots=tuple, keys=tuple, key=bytes, j=cython.Py_ssize_t, k=cython.Py_ssize_t)
cdef object _child(cbytes p, Py_ssize_t start, Py_ssize_t size, tuple node)

@cython.locals(c=cython.uchar)
cdef Py_ssize_t _space(cbytes p, Py_ssize_t n, Py_ssize_t i) noexcept

@cython.locals(mask=bytes, kept=cython.Py_ssize_t, run=cython.Py_ssize_t, run_end=cython.Py_ssize_t,
               start=cython.Py_ssize_t, end=cython.Py_ssize_t, escaped=cython.bint, k=cython.Py_ssize_t,
               at=cython.Py_ssize_t, size=cython.Py_ssize_t, c=cython.uchar, comma=cython.Py_ssize_t)
cdef Py_ssize_t _object(cbytes p, Py_ssize_t n, Py_ssize_t i, cbytes stops, tuple node, int depth, bytearray out,
                        bint top)

@cython.locals(c=cython.uchar)
cdef Py_ssize_t _value(cbytes p, Py_ssize_t n, Py_ssize_t i, cbytes stops, int depth) noexcept

@cython.locals(c=cython.uchar)
cdef Py_ssize_t _container(cbytes p, Py_ssize_t n, Py_ssize_t i, cbytes stops, int depth) noexcept

@cython.locals(c=cython.uchar)
cdef Py_ssize_t _string(cbytes p, Py_ssize_t n, Py_ssize_t i, cbytes stops) noexcept

@cython.locals(value=cython.long, k=cython.Py_ssize_t, c=cython.uchar)
cdef long _hex4(cbytes p, Py_ssize_t n, Py_ssize_t i) noexcept

@cython.locals(c=cython.uchar, unit=cython.long, low=cython.long)
cdef Py_ssize_t _escape(cbytes p, Py_ssize_t n, Py_ssize_t i) noexcept

@cython.locals(low=cython.uchar, high=cython.uchar)
cdef Py_ssize_t _utf8(cbytes p, Py_ssize_t n, Py_ssize_t i, unsigned char c) noexcept

@cython.locals(start=cython.Py_ssize_t, digits=cython.Py_ssize_t, first=cython.Py_ssize_t, negative=cython.bint,
               exponent=cython.Py_ssize_t, c=cython.uchar)
cdef Py_ssize_t _number(cbytes p, Py_ssize_t n, Py_ssize_t i) noexcept
