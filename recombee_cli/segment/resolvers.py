"""What a compiled mapping is: a `Resolver`, a function from the event payload to the value.

mapping-kit compiles directives into resolvers and the Liquid port compiles `@liquid` templates
into them; both take the type and `raiser` (the resolver of a mapping that can only fail) from
here, so that neither has to import the other's internals.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from recombee_cli.errors import MappingError

__all__ = ["Resolver", "raiser"]

Resolver = Callable[[Any], Any]


def raiser(message: str | list[str]) -> Resolver:
    """A resolver that raises MappingError(message) when it runs: the reference raises its
    errors only when that branch of the mapping is evaluated, not when it is compiled."""
    def fail(_p: Any) -> Any:
        raise MappingError(message)
    return fail
