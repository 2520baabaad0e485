# Cython's view of sender.py (an "augmenting .pxd"): the queued requests are items.py's Item structs,
# so that reading a Batch's answers reads their fields, not attributes by name. The .py stays the
# reference and the pure build; nothing here changes what it computes.
from recombee_cli.recombee.items cimport Item
