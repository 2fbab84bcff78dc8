//! Generates the gnostic OpenAPI v2 messages (`openapi.v2`, the protobuf form of `/openapi/v2`
//! that kubectl asks for) from the vendored `OpenAPIv2.proto`, compiled by protox (pure Rust,
//! so no system `protoc`) and prost-build.

fn main() {
    let proto = "proto/gnostic/openapiv2/OpenAPIv2.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds =
        protox::compile([proto], ["proto/gnostic"]).unwrap_or_else(|e| panic!("{proto}: {e}"));
    prost_build::Config::new()
        .compile_fds(fds)
        .unwrap_or_else(|e| panic!("generating the gnostic OpenAPI v2 messages: {e}"));
}
