//! `application/vnd.kubernetes.protobuf` request bodies (`decode_k8s_protobuf`, as kubectl
//! create sends them). Invariants: an accepted body is an object carrying its envelope's
//! `apiVersion` and `kind`; and when the server's own encoder (what protobuf clients are
//! answered with) can write that object, decoding its bytes gives the same object back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skiff_control_plane::api::protobuf::{decode_k8s_protobuf, encode_k8s_protobuf};

fuzz_target!(|body: &[u8]| {
    let Ok(object) = decode_k8s_protobuf(body) else {
        return;
    };
    let type_meta = |key: &str| object.get(key).and_then(|v| v.as_str()).unwrap_or("");
    assert!(
        !type_meta("apiVersion").is_empty() && !type_meta("kind").is_empty(),
        "decoded object without apiVersion/kind: {object}"
    );
    if let Ok(encoded) = encode_k8s_protobuf(&object) {
        let back = decode_k8s_protobuf(&encoded).expect("what the server encodes decodes");
        assert_eq!(
            back, object,
            "decode -> encode -> decode changed the object"
        );
    }
});
