"""Segment events to Recombee requests: the configuration (TOML, Segment subscriptions), compiled
once into triggers and one fast function per mapping, and the translate stage that runs them over
a block of lines (trigger -> map -> build). What runs it over sources and feeds a sink is
`pipeline/`."""
