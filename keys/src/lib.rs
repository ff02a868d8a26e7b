//! Keys (placeholder)
