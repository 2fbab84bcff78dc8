//! Prints `about to trap`, then panics with `boom`. Panics abort on wasm32-wasip2: the panic
//! message goes to stderr and the instance traps (`unreachable`).

fn main() {
    println!("about to trap");
    panic!("boom");
}
