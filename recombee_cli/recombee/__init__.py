"""Recombee out: request signing, the HTTP client, user routing, the concurrent sender (a `Sink`)
and the local emulator the tests and the README's first command run against."""
