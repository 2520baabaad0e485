"""Read and decode: files, folders, globs, stdin and object storage -> lines -> Segment events."""
