//! `wasm-job`: the sample Skiff batch job (a `wasi:cli/command` component).
//!
//! Prints the first `COUNT` primes (env var, default 20) and their sum, e.g. for 20:
//!
//! ```text
//! primes: 2 3 5 7 11 13 17 19 23 29 31 37 41 43 47 53 59 61 67 71
//! sum: 639
//! ```
//!
//! Exits with a failure status (the host sees 1) when `COUNT` is not a number.

use std::process::ExitCode;

fn main() -> ExitCode {
    let count = match std::env::var("COUNT") {
        Ok(value) => match value.trim().parse::<usize>() {
            Ok(count) => count,
            Err(_) => {
                eprintln!("wasm-job: COUNT must be a non-negative integer, got {value:?}");
                return ExitCode::FAILURE;
            }
        },
        Err(_) => 20,
    };
    let primes = first_primes(count);
    let list: Vec<String> = primes.iter().map(u64::to_string).collect();
    println!("primes: {}", list.join(" "));
    println!("sum: {}", primes.iter().sum::<u64>());
    ExitCode::SUCCESS
}

/// The first `count` primes, by trial division against the primes found so far.
fn first_primes(count: usize) -> Vec<u64> {
    let mut primes: Vec<u64> = Vec::with_capacity(count);
    let mut candidate = 2u64;
    while primes.len() < count {
        if primes
            .iter()
            .take_while(|&&p| p * p <= candidate)
            .all(|&p| !candidate.is_multiple_of(p))
        {
            primes.push(candidate);
        }
        candidate += 1;
    }
    primes
}

#[cfg(test)]
mod tests {
    use super::first_primes;

    #[test]
    fn first_twenty_primes() {
        let primes = first_primes(20);
        assert_eq!(primes.first(), Some(&2));
        assert_eq!(primes.last(), Some(&71));
        assert_eq!(primes.iter().sum::<u64>(), 639);
        assert!(first_primes(0).is_empty());
    }
}
