//! Prints `about to fail`, then exits with status 3.
//!
//! `std::process::exit(3)` alone would reach the host as `wasi:cli/exit.exit(err)`, which only
//! says "failure" (wasmtime reports status 1). `wasi:cli/exit.exit-with-code` (WASI 0.2.12)
//! carries the real code, so the host sees exit status 3.

use std::io::Write as _;

fn main() {
    println!("about to fail");
    let _ = std::io::stdout().flush();
    wasi::cli::exit::exit_with_code(3);
    // Not reached: exit-with-code does not return.
    std::process::exit(3);
}
