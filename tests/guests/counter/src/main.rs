//! Reads `/data/count` (0 when missing), writes back the number plus one, prints `count=N`,
//! then sleeps forever so the pod stays Running and Ready. With `/data` on a
//! persistentVolumeClaim volume, each start of a pod of the same claim prints the next number.

use std::time::Duration;

/// Where the count lives (the claim's mount path in the tests).
const COUNT_FILE: &str = "/data/count";
/// One long sleep per loop turn; the guest never exits on its own.
const NAP: Duration = Duration::from_secs(3600);

fn main() {
    let previous = std::fs::read_to_string(COUNT_FILE)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let count = previous + 1;
    if let Err(e) = std::fs::write(COUNT_FILE, format!("{count}\n")) {
        eprintln!("cannot write {COUNT_FILE}: {e}");
        std::process::exit(1);
    }
    println!("count={count}");
    loop {
        std::thread::sleep(NAP);
    }
}
