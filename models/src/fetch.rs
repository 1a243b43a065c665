//! Fetching catalog models into the cache.
