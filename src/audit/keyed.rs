//! Keyed hashes: values that must be correlatable across records (the same e-mail address
//! seen twice, the same API key) but never readable from the log or a trace.
//!
//! A plain SHA-256 of a phone number or a card number is reversible by enumeration (the
//! space is small), so every such value goes through HMAC-SHA256 with a key the operator
//! configures and keeps out of the log's reach.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// An HMAC-SHA256 key for correlatable, unreadable values.
#[derive(Clone)]
pub struct KeyedHasher {
    mac: HmacSha256,
}

impl std::fmt::Debug for KeyedHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.write_str("KeyedHasher(..)")
    }
}

impl KeyedHasher {
    /// Builds a hasher from raw key bytes (HMAC accepts any length; use ≥ 32 random bytes).
    pub fn new(key: &[u8]) -> Self {
        // `new_from_slice` only fails for fixed-size-key MACs; HMAC takes any length.
        let mac = match HmacSha256::new_from_slice(key) {
            Ok(mac) => mac,
            Err(_) => unreachable_hmac(),
        };
        Self { mac }
    }

    /// Full keyed hash as lowercase hex (64 characters).
    pub fn hash_hex(&self, value: &[u8]) -> String {
        let mut mac = self.mac.clone();
        mac.update(value);
        hex::encode(mac.finalize().into_bytes())
    }

    /// Short keyed hash (first 16 hex characters = 64 bits): enough to correlate values
    /// within a log without making the record bulky. Prefixed with `hmac:` so a reader
    /// knows it is keyed.
    pub fn tag(&self, value: &[u8]) -> String {
        let full = self.hash_hex(value);
        format!("hmac:{}", &full[..16])
    }
}

#[cold]
fn unreachable_hmac() -> ! {
    // HMAC's InvalidLength is never returned for variable-length keys (RFC 2104 hashes or
    // pads any key); reaching this would be a bug in the hmac crate.
    panic!("HMAC-SHA256 rejected a key, which RFC 2104 does not allow")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let h = KeyedHasher::new(b"Jefe");
        assert_eq!(
            h.hash_hex(b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn tag_is_keyed_and_stable() {
        let a = KeyedHasher::new(b"key-a");
        let b = KeyedHasher::new(b"key-b");
        let v = b"alice@example.com";
        assert_eq!(a.tag(v), a.tag(v));
        assert_ne!(a.tag(v), b.tag(v));
        assert!(a.tag(v).starts_with("hmac:"));
        assert_eq!(a.tag(v).len(), 5 + 16);
        assert!(!a.tag(v).contains("alice"));
        assert_eq!(format!("{a:?}"), "KeyedHasher(..)");
    }
}
