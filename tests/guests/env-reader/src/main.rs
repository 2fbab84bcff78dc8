//! Prints `GREETING=<env GREETING>`, then `file=<content of /config/greeting>` (trailing newlines
//! trimmed) read from the preopened directory `/config`, and exits 0. Exits 1 with a message on
//! stderr when the variable or the file is missing.

use std::process::ExitCode;

fn main() -> ExitCode {
    let Ok(greeting) = std::env::var("GREETING") else {
        eprintln!("env-reader: env var GREETING is not set");
        return ExitCode::FAILURE;
    };
    println!("GREETING={greeting}");
    match std::fs::read_to_string("/config/greeting") {
        Ok(content) => {
            println!("file={}", content.trim_end_matches(['\r', '\n']));
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("env-reader: cannot read /config/greeting: {err}");
            ExitCode::FAILURE
        }
    }
}
