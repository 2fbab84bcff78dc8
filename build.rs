//! Rebuilds `skiff` when what `skiff new` embeds changes: the project templates and the SDK
//! sources it vendors into Rust projects (include_dir! alone does not tell cargo).
fn main() {
    for path in ["templates", "sdk/src", "sdk/Cargo.toml", "sdk/README.md"] {
        println!("cargo:rerun-if-changed={path}");
    }
}
