"""Model and maths of RollingDepth: no sources, sinks or asyncio (docs/architecture.md)."""
