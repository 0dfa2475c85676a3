//! The per-container helper process of `bulwark-runtime` (filled in with the executor).
fn main() {}
