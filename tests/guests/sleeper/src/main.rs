//! Prints `started`, sleeps `SECONDS` seconds (env var, default 2), prints `done`, exits 0.

use std::time::Duration;

fn main() {
    println!("started");
    let seconds = std::env::var("SECONDS")
        .ok()
        .and_then(|value| value.trim().parse::<u64>().ok())
        .unwrap_or(2);
    std::thread::sleep(Duration::from_secs(seconds));
    println!("done");
}
