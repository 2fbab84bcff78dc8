//! YAML request bodies (`decode_yaml`, and `decode_object` for the YAML media types; server-side
//! apply bodies are read the same way). Invariant: an accepted body is a JSON value that the
//! store can write and read back unchanged.
#![no_main]

use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use skiff_control_plane::api::request::{decode_json, decode_object, decode_yaml};

fuzz_target!(|body: &[u8]| {
    let decoded = decode_yaml(body);
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/yaml"));
    let via_object = decode_object(&headers, body);
    assert_eq!(
        decoded.as_ref().ok(),
        via_object.as_ref().ok(),
        "decode_object(application/yaml) differs from decode_yaml"
    );
    if let Ok(value) = decoded {
        let stored = serde_json::to_vec(&value).expect("a decoded value serializes");
        let back = decode_json(&stored).expect("its JSON is a valid JSON body");
        assert_eq!(back, value, "the value changed through the store's JSON");
    }
});
