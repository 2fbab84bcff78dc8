//! JSON request bodies (`decode_json`, and `decode_object` for the JSON media types).
//! Invariant: an accepted body is a value the store can write and read back unchanged.
#![no_main]

use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use skiff_control_plane::api::request::{decode_json, decode_object};

fuzz_target!(|body: &[u8]| {
    let decoded = decode_json(body);
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let via_object = decode_object(&headers, body);
    assert_eq!(
        decoded.as_ref().ok(),
        via_object.as_ref().ok(),
        "decode_object(application/json) differs from decode_json"
    );
    if let Ok(value) = decoded {
        let stored = serde_json::to_vec(&value).expect("a decoded value serializes");
        let back: serde_json::Value =
            serde_json::from_slice(&stored).expect("what was written reads back");
        assert_eq!(back, value, "the value changed through the store's JSON");
    }
});
