"""Where built requests go: the `Sink` interface and the tickets it takes (protocol), and its
implementations other than Recombee's sender: the dry-run printers and `validate`'s null sink
(printer), the file export (files, with its formats)."""
