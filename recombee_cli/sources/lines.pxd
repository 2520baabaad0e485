# Cython's view of lines.py (an "augmenting .pxd"): cutting lines by C's memchr in the compiled
# build, where a call of bytes.find per line cost more than the line's bytes, and counting them
# sixteen bytes a step. The .py stays the reference and the pure build; nothing here changes what
# it computes.
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

cdef extern from *:
    """
    /* How many newlines p[:n] holds (what bytes.count(b"\\n") gives). bytes.count looks at
       a byte at a time (about 5 instructions a byte); on x86-64, SSE2 compares sixteen at once and
       keeps a count per byte lane (up to 255 steps), summed by psadbw: under half an instruction
       a byte. */
    #if defined(__SSE2__)
    #include <emmintrin.h>
    #endif
    static inline Py_ssize_t lines_newlines(const unsigned char *p, Py_ssize_t n) {
        Py_ssize_t count = 0, i = 0;
    #if defined(__SSE2__)
        const __m128i newline = _mm_set1_epi8(0x0A), zero = _mm_setzero_si128();
        while (i + 16 <= n) {
            __m128i lanes = zero;
            int steps = 0;
            for (; steps < 255 && i + 16 <= n; steps++, i += 16)
                lanes = _mm_sub_epi8(lanes, _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(p + i)), newline));
            __m128i sums = _mm_sad_epu8(lanes, zero);   /* two sums of eight lanes, at bits 0 and 64 */
            count += _mm_cvtsi128_si32(sums) + _mm_extract_epi16(sums, 4);
        }
    #endif
        for (; i < n; i++)
            count += p[i] == 0x0A;
        return count;
    }
    """
    Py_ssize_t _newlines "lines_newlines" (cbytes p, Py_ssize_t n) noexcept

cdef bint _FAST

@cython.locals(p=cbytes, n=cython.Py_ssize_t, start=cython.Py_ssize_t, end=cython.Py_ssize_t, lines=list)
cpdef list cut_lines(bytes data)

cpdef object count_newlines(bytes data)
