//! The per-container shim of `bulwark-runtime` (see `bulwark_runtime::shim_main`).
//!
//! A separate, single-threaded executable: libcontainer clones the container
//! from it, which must never happen from a multi-threaded (tokio) process.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(bulwark_runtime::shim_main(&args));
}
