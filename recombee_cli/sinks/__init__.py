"""Where built requests go: the `Sink` interface and its implementations other than Recombee's
sender (the dry-run printer, the file exporter)."""
