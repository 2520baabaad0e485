# Cython's view of request_kinds.py (an "augmenting .pxd"): `route` runs once per request a sending
# run translates; its locals typed, a quick kind's tuple is read by index, not through Python's
# item protocol. The .py stays the reference and the pure build; nothing here changes what it
# computes.
cimport cython

@cython.locals(given=object, params=dict, quick_kinds=dict, quick=tuple, one=tuple, keyed=tuple, users=tuple,
               flags=cython.long)
cpdef tuple route(dict request, object sid=*)
