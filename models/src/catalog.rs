//! Catalog of known model files.
