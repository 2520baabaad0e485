"""Where built requests go: the `Sink` interface and the tickets it takes (protocol), and its
implementations other than Recombee's sender: the dry-run printers and `validate`'s null sink
(printer), the file export (files: the part writer and the sink; rows: which rows a request
becomes, with a format per module such as reco_interactions; encoders: how rows are written)."""
