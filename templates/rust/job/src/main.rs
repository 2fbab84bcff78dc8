//! {{name}}: a Skiff job — a WebAssembly command (`wasi:cli/run`) that runs to completion.
//!
//! stdout and stderr are the pod's log; the exit code decides whether the Job's pod succeeded
//! (`std::process::exit(1)` or a panic fails it, and the Job retries up to its backoffLimit).

fn main() {
    println!("{{name}}: hello from a Skiff job (rust)");
    // Environment variables come from the container's `env` in job.yaml.
    if let Ok(namespace) = std::env::var("POD_NAMESPACE") {
        println!("{{name}}: running in namespace {namespace}");
    }
    println!("{{name}}: done");
}
