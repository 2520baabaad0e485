"""How a file export writes its rows: one module per encoding, each an `Encoder`
(`sinks.protocol`), registered by name in `sinks.formats.ENCODERS`. CSV (`csv`) is the only one
today; docs/architecture.md walks through adding another (JSONL, Parquet)."""
