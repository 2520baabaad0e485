"""Segment in: faithful ports of Segment's own code.

Triggers (FQL subscriptions), mapping-kit (`@path`, `@if`, `@template`, Liquid …), JavaScript value
rules, timestamps, the Recombee destination's actions and its presets. Each module follows the
Segment source it ports, and its size follows that source.

Change only with a conformance vector: a behaviour change here must come with a case in
`tests/conformance/` that shows what Segment's runtime does.
"""
