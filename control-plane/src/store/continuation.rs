//! Continue tokens of paged lists: where the next page starts and at which revision, signed so
//! that a client can neither forge nor alter one.
//!
//! A token is base64url (no padding) of `MAC ‖ payload`, where the payload is the JSON
//! `{"v":1,"rv":REVISION,"prefix":"group/plural/[namespace/]","start":"KEY"}` and MAC is its
//! HMAC-SHA256 under the server's continue key ([`ContinueKey`], kept in the data dir so tokens
//! outlive restarts). `start` is the first key the next page may return (the last returned
//! key followed by `\0`); `rv` is the revision of the list's first page, or `-1` for "the
//! newest revision" (the token an expired one is answered with, as Kubernetes does).

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The HMAC key continue tokens are signed with.
#[derive(Clone)]
pub struct ContinueKey([u8; 32]);

impl ContinueKey {
    pub fn new(bytes: [u8; 32]) -> Self {
        ContinueKey(bytes)
    }

    /// A fresh random key (tokens then last as long as this process).
    pub fn random() -> Self {
        use rand::Rng;
        ContinueKey(rand::rng().random())
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for ContinueKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContinueKey(…)")
    }
}

const MAC_LEN: usize = 32;
const VERSION: u32 = 1;

/// The decoded content of a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Continuation {
    v: u32,
    /// The revision every page is read at; `-1`: the newest.
    pub rv: i64,
    /// The list's key prefix (resource, and namespace when the list is namespaced).
    pub prefix: String,
    /// The first key the page may hold.
    pub start: String,
}

impl Continuation {
    pub fn new(rv: i64, prefix: &str, start: String) -> Self {
        Continuation {
            v: VERSION,
            rv,
            prefix: prefix.to_string(),
            start,
        }
    }

    /// The revision to read at: `None` for the newest.
    pub fn revision(&self) -> Option<u64> {
        u64::try_from(self.rv).ok()
    }

    pub fn encode(&self, key: &ContinueKey) -> String {
        let payload = serde_json::to_vec(self).expect("a continuation serializes");
        let mut raw = Vec::with_capacity(MAC_LEN + payload.len());
        raw.extend_from_slice(&hmac_sha256(key.bytes(), &payload));
        raw.extend_from_slice(&payload);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    /// Decodes and verifies `token` for a list of `prefix`. The error is the reason, for
    /// "continue key is not valid: REASON".
    pub fn decode(token: &str, key: &ContinueKey, prefix: &str) -> Result<Continuation, String> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.trim_end_matches('='))
            .map_err(|e| e.to_string())?;
        if raw.len() <= MAC_LEN {
            return Err("the token is too short".into());
        }
        let (mac, payload) = raw.split_at(MAC_LEN);
        if !constant_time_eq(mac, &hmac_sha256(key.bytes(), payload)) {
            return Err("the token was not issued by this server or was altered".into());
        }
        let c: Continuation = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
        if c.v != VERSION {
            return Err(format!(
                "server does not recognize this encoded version {}",
                c.v
            ));
        }
        if c.rv == 0 || c.rv < -1 {
            return Err("incorrect encoded start resourceVersion".into());
        }
        if c.prefix != prefix {
            return Err(format!(
                "the token continues another list ({}), not this one ({prefix})",
                c.prefix
            ));
        }
        if !c.start.starts_with(prefix) || c.start.len() == prefix.len() {
            return Err("encoded start key is not in the list".into());
        }
        Ok(c)
    }
}

/// HMAC-SHA256 (RFC 2104) of `msg` under `key` (at most one block long).
fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .into()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2.
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than a block is hashed first.
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn tokens_round_trip_and_refuse_tampering() {
        let key = ContinueKey::new([7; 32]);
        let prefix = "core/configmaps/default/";
        let c = Continuation::new(42, prefix, format!("{prefix}b\0"));
        let token = c.encode(&key);
        assert_eq!(Continuation::decode(&token, &key, prefix).unwrap(), c);

        // Another key (another server), another list, garbage, a flipped bit, a forged payload.
        assert!(Continuation::decode(&token, &ContinueKey::new([8; 32]), prefix).is_err());
        let other = Continuation::decode(&token, &key, "core/configmaps/other/").unwrap_err();
        assert!(other.contains("another list"), "{other}");
        assert!(Continuation::decode(&token, &key, "core/configmaps/").is_err());
        assert!(Continuation::decode("garbage!", &key, prefix).is_err());
        assert!(Continuation::decode("", &key, prefix).is_err());
        let mut raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&token)
            .unwrap();
        let last = raw.len() - 3;
        raw[last] ^= 1;
        let flipped = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw);
        assert!(Continuation::decode(&flipped, &key, prefix).is_err());
        let forged = Continuation::new(1, prefix, format!("{prefix}a\0"));
        let mut raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&token)
            .unwrap();
        raw.truncate(MAC_LEN);
        raw.extend_from_slice(&serde_json::to_vec(&forged).unwrap());
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw);
        let err = Continuation::decode(&forged, &key, prefix).unwrap_err();
        assert!(err.contains("altered"), "{err}");
    }

    #[test]
    fn signed_but_malformed_tokens_are_refused() {
        let key = ContinueKey::new([1; 32]);
        let prefix = "core/pods/";
        for bad in [
            Continuation::new(0, prefix, format!("{prefix}a\0")),
            Continuation::new(-2, prefix, format!("{prefix}a\0")),
            Continuation::new(5, prefix, "core/secrets/a/b".into()),
            Continuation::new(5, prefix, prefix.into()),
        ] {
            assert!(Continuation::decode(&bad.encode(&key), &key, prefix).is_err());
        }
        let latest = Continuation::new(-1, prefix, format!("{prefix}a\0"));
        let got = Continuation::decode(&latest.encode(&key), &key, prefix).unwrap();
        assert_eq!(got.revision(), None);
    }
}
