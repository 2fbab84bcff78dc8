//! Prints `GREETING=<env GREETING>`, then `file=<content of /config/greeting>` (trailing newlines
//! trimmed) read from the preopened directory `/config`, then `relative=<content of ./greeting>`
//! (relative to the working directory; `relative-error=…` when it cannot be read), and exits 0.
//! Exits 1 with a message on stderr when the variable or `/config/greeting` is missing.

use std::process::ExitCode;

fn main() -> ExitCode {
    let Ok(greeting) = std::env::var("GREETING") else {
        eprintln!("env-reader: env var GREETING is not set");
        return ExitCode::FAILURE;
    };
    println!("GREETING={greeting}");
    match std::fs::read_to_string("/config/greeting") {
        Ok(content) => println!("file={}", content.trim_end_matches(['\r', '\n'])),
        Err(err) => {
            eprintln!("env-reader: cannot read /config/greeting: {err}");
            return ExitCode::FAILURE;
        }
    }
    // Relative to the working directory (the container's `workingDir`, preopened as `.`).
    match std::fs::read_to_string("greeting") {
        Ok(content) => println!("relative={}", content.trim_end_matches(['\r', '\n'])),
        Err(err) => println!("relative-error={err}"),
    }
    ExitCode::SUCCESS
}
