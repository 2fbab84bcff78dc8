//! Tries to leave the sandbox's filesystem: `..` out of a preopened directory, absolute paths
//! that are not preopened, and symlinks in a preopened directory that point out of it (placed
//! there by the test). Prints `blocked <what>: <error>` or `ESCAPED <what>: <content>` per
//! attempt, and first `inside: <content>` for a file it may read, so a test can tell a working
//! sandbox from one that reads nothing at all. Exits 0.

fn attempt(what: &str, path: &str) {
    match std::fs::read_to_string(path) {
        Ok(content) => println!("ESCAPED {what}: {}", content.trim_end()),
        Err(err) => println!("blocked {what}: {err}"),
    }
}

fn main() {
    match std::fs::read_to_string("/data/inside.txt") {
        Ok(content) => println!("inside: {}", content.trim_end()),
        Err(err) => println!("inside-error: {err}"),
    }
    attempt("dot-dot", "/data/../outside.txt");
    attempt("dot-dot-deep", "/data/../../../../etc/hostname");
    attempt("absolute", "/etc/hostname");
    attempt("relative-dot-dot", "../outside.txt");
    attempt("absolute-symlink", "/data/link-abs");
    attempt("relative-symlink", "/data/link-rel");
    attempt("symlink-to-dir", "/data/link-dir/outside.txt");
    match std::fs::read_dir("/") {
        Ok(entries) => {
            let names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            println!("root lists: {}", names.join(","));
        }
        Err(err) => println!("blocked root-listing: {err}"),
    }
}
