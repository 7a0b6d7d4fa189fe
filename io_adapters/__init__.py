"""The node's edges: sources and sinks addressed by URIs, and the encodings they send (docs/architecture.md)."""
