//! Prints `allocating`, then allocates 1 MiB chunks forever, writing every page of each and
//! keeping them all, until the host refuses to grow memory. Every 16 MiB it prints
//! `allocated <N> MiB`. When an allocation is refused the standard library prints
//! `memory allocation of 1048576 bytes failed` to stderr and aborts (a trap).

const MIB: usize = 1024 * 1024;
const PAGE: usize = 4096;

fn main() {
    println!("allocating");
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0u8; MIB];
        for byte in chunk.iter_mut().step_by(PAGE) {
            *byte = 1;
        }
        chunks.push(std::hint::black_box(chunk));
        if chunks.len().is_multiple_of(16) {
            println!("allocated {} MiB", chunks.len());
        }
    }
}
