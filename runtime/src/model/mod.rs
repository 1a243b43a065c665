//! The decoder forward pass driven by `ArchConfig`, with its KV cache.
