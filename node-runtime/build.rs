//! Build steps that need no system tools beyond the C compiler Rust links with:
//! - the CRI v1 gRPC client, compiled from the vendored `api.proto` by protox (pure Rust, so no
//!   system `protoc`) and tonic-prost-build;
//! - Skiff's pause binary (`pause/pause.c`), linked statically so the sandbox image needs
//!   nothing else.

use std::path::PathBuf;

fn main() {
    let proto = "proto/cri-api/runtime/v1/api.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"]).unwrap_or_else(|e| panic!("{proto}: {e}"));
    tonic_prost_build::configure()
        .build_server(false)
        .build_transport(false)
        .compile_fds(fds)
        .unwrap_or_else(|e| panic!("generating the CRI client: {e}"));

    let src = "pause/pause.c";
    println!("cargo:rerun-if-changed={src}");
    let out =
        PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("skiff-pause");
    let compiler = cc::Build::new().cargo_metadata(false).get_compiler();
    let status = compiler
        .to_command()
        .args(["-static", "-Os", "-s", "-Wall", "-o"])
        .arg(&out)
        .arg(src)
        .status()
        .unwrap_or_else(|e| panic!("running the C compiler for {src}: {e}"));
    assert!(
        status.success(),
        "compiling {src} failed ({status}); a static libc (libc6-dev) is needed"
    );
}
