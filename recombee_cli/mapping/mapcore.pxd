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

cdef list _run(tuple program, dict event, bint written)

@cython.locals(at=cython.Py_ssize_t, stamp_at=cython.Py_ssize_t)
cdef list _build_add(tuple builder, list values, dict event, bint written)

cdef extern from *:
    """
    #include <math.h>
    #include <string.h>
    #include <stdio.h>
    /* An add-type request's JSON as orjson.dumps writes its dict, written from the resolved values
       (mapcore.py's module doc): into a buffer on the stack, each value as orjson writes it, or
       Py_None where a value is not one this writer knows to write exactly so (the caller then
       builds the dicts). Never raises but for MemoryError making the bytes. */
    typedef struct { char *p; Py_ssize_t n, cap; } mapcore_buf;

    static int mapcore_put(mapcore_buf *b, const char *s, Py_ssize_t len) {
        if (len > b->cap - b->n) return 0;
        memcpy(b->p + b->n, s, (size_t)len);
        b->n += len;
        return 1;
    }

    static int mapcore_bytes(mapcore_buf *b, PyObject *o) {
        return PyBytes_CheckExact(o) && mapcore_put(b, PyBytes_AS_STRING(o), PyBytes_GET_SIZE(o));
    }

    /* A finite float's shortest digits, as Python's repr and orjson write them (they agree where
       repr has no exponent: 1e-4 <= |d| < 1e16), for the common case: the fewest decimals k
       (1..9) whose k-digit decimal reads back as d. r / 10^k is then exact IEEE division of two
       exact doubles (r < 2^53), so it equals what parsing the decimal gives; and with
       ulp(d) * 10^k < 0.5 no other k-digit decimal reads back as d, nor did a shorter one (the
       rounding of d * 10^k cannot have missed it): so these are repr's digits. 0: not written
       so (orjson's dumps writes it). */
    static int mapcore_float(mapcore_buf *b, double d) {
        static const double scales[10] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};
        double a = fabs(d);
        if (!isfinite(d) || a < 1e-4 || a >= 1e15) return 0;
        double ulp = nextafter(a, INFINITY) - a;
        int k;
        for (k = 1; k <= 9; k++) {
            double m = a * scales[k];
            if (ulp * scales[k] >= 0.5 || m >= 9007199254740992.0) return 0;
            double r = nearbyint(m);
            if (r / scales[k] != a) continue;
            unsigned long long digits = (unsigned long long)r, unit = (unsigned long long)scales[k];
            unsigned long long whole = digits / unit, part = digits % unit;
            char text[48];
            int n = 0, i;
            if (d < 0) text[n++] = '-';
            char rev[24];
            int w = 0;
            do { rev[w++] = (char)('0' + whole % 10); whole /= 10; } while (whole);
            while (w) text[n++] = rev[--w];
            text[n++] = '.';
            for (i = k - 1; i >= 0; i--) { text[n + i] = (char)('0' + part % 10); part /= 10; }
            return mapcore_put(b, text, n + k);
        }
        return 0;
    }

    /* Bytes orjson writes as they are inside quotes: printable ASCII but the quote and the backslash. */
    static unsigned char mapcore_plain[256];
    static int mapcore_plain_ready = 0;

    /* A str, float, int, bool or None as orjson writes it; 0: not written (left to orjson). Text:
       printable ASCII without a quote or backslash, which orjson writes as it is. A float: by
       mapcore_float, else by orjson itself (`dumps`, its shortest digits; Python's repr agrees
       without an exponent, but its dtoa costs about ten times the instructions). An int: within
       64 bits. */
    static int mapcore_scalar(mapcore_buf *b, PyObject *v, PyObject *dumps) {
        if (PyUnicode_CheckExact(v)) {
            if (!PyUnicode_IS_ASCII(v)) return 0;
            Py_ssize_t len = PyUnicode_GET_LENGTH(v), i;
            const unsigned char *s = PyUnicode_1BYTE_DATA(v);
            if (!mapcore_plain_ready) {
                for (i = 0; i < 256; i++) mapcore_plain[i] = i >= 0x20 && i < 0x7F && i != 0x22 && i != 0x5C;
                mapcore_plain_ready = 1;
            }
            for (i = 0; i < len; i++)
                if (!mapcore_plain[s[i]]) return 0;
            if (len + 2 > b->cap - b->n) return 0;
            b->p[b->n++] = '"';
            memcpy(b->p + b->n, s, (size_t)len);
            b->n += len;
            b->p[b->n++] = '"';
            return 1;
        }
        if (PyFloat_CheckExact(v)) {
            if (mapcore_float(b, PyFloat_AS_DOUBLE(v))) return 1;
            PyObject *text = PyObject_CallOneArg(dumps, v);
            if (text == NULL) { PyErr_Clear(); return 0; }
            int ok = mapcore_bytes(b, text);
            Py_DECREF(text);
            return ok;
        }
        if (PyLong_CheckExact(v)) {
            int overflow = 0;
            long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
            if (overflow || (x == -1 && PyErr_Occurred())) { PyErr_Clear(); return 0; }
            char text[24];
            int len = snprintf(text, sizeof text, "%lld", x);
            return len > 0 && mapcore_put(b, text, len);
        }
        if (v == Py_True) return mapcore_put(b, "true", 4);
        if (v == Py_False) return mapcore_put(b, "false", 5);
        if (v == Py_None) return mapcore_put(b, "null", 4);
        return 0;
    }

    /* A scalar, or a dict of str keys and scalars (additionalData), members in the dict's order. */
    static int mapcore_value(mapcore_buf *b, PyObject *v, PyObject *dumps) {
        if (!PyDict_CheckExact(v)) return mapcore_scalar(b, v, dumps);
        Py_ssize_t at = 0;
        PyObject *key, *item;
        int first = 1;
        if (!mapcore_put(b, "{", 1)) return 0;
        while (PyDict_Next(v, &at, &key, &item)) {
            if (!first && !mapcore_put(b, ",", 1)) return 0;
            first = 0;
            if (!PyUnicode_CheckExact(key) || !mapcore_scalar(b, key, dumps) || !mapcore_put(b, ":", 1)
                    || !mapcore_scalar(b, item, dumps)) return 0;
        }
        return mapcore_put(b, "}", 1);
    }

    /* shell: request_shell's (head, middle, each body key's bytes, orjson.dumps); body: the
       builder's (name, position, required); values: the resolved fields. */
    static PyObject *mapcore_write_add(PyObject *shell, PyObject *ts, PyObject *extra, PyObject *body,
                                       PyObject *values) {
        char space[4096];
        mapcore_buf b = {space, 0, (Py_ssize_t)sizeof space};
        PyObject *keys = PyTuple_GET_ITEM(shell, 2), *dumps = PyTuple_GET_ITEM(shell, 3);
        Py_ssize_t i, n = PyTuple_GET_SIZE(body);
        if (!PyTuple_CheckExact(keys) || PyTuple_GET_SIZE(keys) != n) Py_RETURN_NONE;
        if (!mapcore_bytes(&b, PyTuple_GET_ITEM(shell, 0)) || !mapcore_value(&b, ts, dumps)
                || !mapcore_bytes(&b, PyTuple_GET_ITEM(shell, 1)) || !mapcore_value(&b, extra, dumps))
            Py_RETURN_NONE;
        for (i = 0; i < n; i++) {
            PyObject *entry = PyTuple_GET_ITEM(body, i);
            Py_ssize_t at = PyLong_AsSsize_t(PyTuple_GET_ITEM(entry, 1));
            if (at < 0 || at >= PyList_GET_SIZE(values)) { PyErr_Clear(); Py_RETURN_NONE; }
            PyObject *value = PyList_GET_ITEM(values, at);
            int required = PyObject_IsTrue(PyTuple_GET_ITEM(entry, 2));   /* (as `if required` reads it) */
            if (required < 0) { PyErr_Clear(); Py_RETURN_NONE; }
            if (!required && value == Py_None) continue;
            if (!mapcore_bytes(&b, PyTuple_GET_ITEM(keys, i)) || !mapcore_value(&b, value, dumps)) Py_RETURN_NONE;
        }
        if (!mapcore_put(&b, "}}", 2)) Py_RETURN_NONE;
        return PyBytes_FromStringAndSize(b.p, b.n);
    }
    """
    object _write_add "mapcore_write_add" (tuple shell, object ts, object extra, tuple body, list values)

cdef object _check_id(str name, object value)

@cython.locals(ch=cython.Py_UCS4)
cpdef bint id_chars_ok(str value)
