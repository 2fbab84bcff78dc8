//! Prints `spinning`, then burns CPU forever without calling the host: only an epoch/fuel
//! deadline or killing the instance stops it.

fn main() {
    println!("spinning");
    let mut counter = 0u64;
    loop {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}
