//! The pseudonym vault: placeholder → original value, per conversation scope, so that a
//! response can be restored even when it passes through another replica than its
//! request.
//!
//! - [`MemoryVault`]: one process; entries expire after their TTL and the oldest are
//!   evicted beyond a bounded size.
//! - [`RedisVault`]: several replicas. Each value is sealed with AES-256-GCM (key from
//!   config, fresh random 96-bit nonce per value, the Redis key as associated data so a
//!   sealed value cannot be moved to another placeholder) and stored with `SET .. PX`
//!   under `v:{scope}:<placeholder>`; the `{scope}` hash tag keeps a conversation in one
//!   Cluster slot so `get_many` is one `MGET`. Random nonces are safe for well over
//!   2^32 values per key (NIST SP 800-38D bound); rotate the key before that.
//!
//! Values never appear in logs, errors or `Debug` output.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::redis::aio::ConnectionManager;
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::Engine;
use futures_util::future::BoxFuture;

use super::clock::{Clock, SystemClock};
use super::redis::escape_tag;

/// Errors of a vault. They never carry a stored value.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("vault unavailable: {0}")]
    Unavailable(String),
    #[error("vault value could not be decrypted (wrong key or tampered)")]
    Decrypt,
    #[error("vault config error: {0}")]
    Config(String),
}

/// A pseudonym vault. Object safe (`Arc<dyn PseudonymVault>`).
pub trait PseudonymVault: Send + Sync {
    /// Stores `value` for `placeholder` in `scope` (a conversation id) for `ttl`.
    fn put<'a>(
        &'a self,
        scope: &'a str,
        placeholder: &'a str,
        value: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), VaultError>>;

    /// Stores several `(placeholder, value)` pairs in one go (one round trip in Redis).
    fn put_many<'a>(
        &'a self,
        scope: &'a str,
        entries: &'a [(&'a str, &'a str)],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), VaultError>>;

    /// The value of one placeholder, if present and not expired.
    fn get<'a>(
        &'a self,
        scope: &'a str,
        placeholder: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, VaultError>>;

    /// The values of several placeholders, in order.
    fn get_many<'a>(
        &'a self,
        scope: &'a str,
        placeholders: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Vec<Option<String>>, VaultError>>;
}

// ---------------------------------------------------------------- memory

struct Entry {
    value: String,
    expires_us: u64,
    seq: u64,
}

#[derive(Default)]
struct Inner {
    map: HashMap<String, Entry>,
    /// Insertion order: (seq, map key); stale rows (overwritten or expired) are skipped.
    order: VecDeque<(u64, String)>,
    next_seq: u64,
}

/// In-memory vault with TTL and a bound on the number of entries (oldest evicted).
pub struct MemoryVault {
    inner: Mutex<Inner>,
    max_entries: usize,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for MemoryVault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryVault")
            .field("max_entries", &self.max_entries)
            .finish_non_exhaustive()
    }
}

fn mem_key(scope: &str, placeholder: &str) -> String {
    let mut k = String::with_capacity(scope.len() + placeholder.len() + 1);
    k.push_str(scope);
    k.push('\0');
    k.push_str(placeholder);
    k
}

impl MemoryVault {
    /// A vault holding at most `max_entries` values.
    pub fn new(max_entries: usize) -> Self {
        Self::with_clock(max_entries, Arc::new(SystemClock))
    }

    /// The same on a given clock (tests).
    pub fn with_clock(max_entries: usize, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            max_entries: max_entries.max(1),
            clock,
        }
    }

    /// Number of entries held (expired ones included until they are touched or evicted).
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether the vault holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn put_sync(&self, scope: &str, entries: &[(&str, &str)], ttl: Duration) {
        let now = self.clock.now_us();
        let expires_us = now.saturating_add(u64::try_from(ttl.as_micros()).unwrap_or(u64::MAX));
        let mut g = self.lock();
        for (placeholder, value) in entries {
            let key = mem_key(scope, placeholder);
            let seq = g.next_seq;
            g.next_seq += 1;
            g.order.push_back((seq, key.clone()));
            g.map.insert(
                key,
                Entry {
                    value: (*value).to_owned(),
                    expires_us,
                    seq,
                },
            );
        }
        while g.map.len() > self.max_entries {
            let Some((seq, key)) = g.order.pop_front() else {
                break;
            };
            if g.map.get(&key).is_some_and(|e| e.seq == seq) {
                g.map.remove(&key);
            }
        }
        // Overwrites leave stale order rows; compact when they dominate.
        if g.order.len() > 2 * self.max_entries {
            let Inner { map, order, .. } = &mut *g;
            order.retain(|(seq, key)| {
                map.get(key)
                    .is_some_and(|e| e.seq == *seq && e.expires_us > now)
            });
            map.retain(|_, e| e.expires_us > now);
        }
    }

    fn get_sync(&self, scope: &str, placeholder: &str) -> Option<String> {
        let now = self.clock.now_us();
        let key = mem_key(scope, placeholder);
        let mut g = self.lock();
        match g.map.get(&key) {
            Some(e) if e.expires_us > now => Some(e.value.clone()),
            Some(_) => {
                g.map.remove(&key);
                None
            }
            None => None,
        }
    }
}

impl PseudonymVault for MemoryVault {
    fn put<'a>(
        &'a self,
        scope: &'a str,
        placeholder: &'a str,
        value: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), VaultError>> {
        self.put_sync(scope, &[(placeholder, value)], ttl);
        Box::pin(async { Ok(()) })
    }

    fn put_many<'a>(
        &'a self,
        scope: &'a str,
        entries: &'a [(&'a str, &'a str)],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), VaultError>> {
        self.put_sync(scope, entries, ttl);
        Box::pin(async { Ok(()) })
    }

    fn get<'a>(
        &'a self,
        scope: &'a str,
        placeholder: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, VaultError>> {
        let v = self.get_sync(scope, placeholder);
        Box::pin(async move { Ok(v) })
    }

    fn get_many<'a>(
        &'a self,
        scope: &'a str,
        placeholders: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Vec<Option<String>>, VaultError>> {
        let v = placeholders
            .iter()
            .map(|p| self.get_sync(scope, p))
            .collect();
        Box::pin(async move { Ok(v) })
    }
}

// ---------------------------------------------------------------- encryption

/// The vault's AES-256-GCM key. `Debug` never shows it.
pub struct VaultKey(LessSafeKey);

impl fmt::Debug for VaultKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VaultKey(..)")
    }
}

/// Format version byte in front of each sealed value.
const SEALED_V1: u8 = 1;

impl VaultKey {
    /// A key from 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, VaultError> {
        if bytes.len() != 32 {
            return Err(VaultError::Config(format!(
                "vault key must be 32 bytes, got {}",
                bytes.len()
            )));
        }
        let k = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| VaultError::Config("bad vault key".into()))?;
        Ok(Self(LessSafeKey::new(k)))
    }

    /// A key written as base64 (standard or url-safe, padded or not) or 64 hex digits,
    /// e.g. from an environment variable named in the config.
    pub fn parse(text: &str) -> Result<Self, VaultError> {
        let t = text.trim();
        if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            let b = hex::decode(t).map_err(|_| VaultError::Config("vault key: bad hex".into()))?;
            return Self::from_bytes(&b);
        }
        let engines = [
            &base64::engine::general_purpose::STANDARD,
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            &base64::engine::general_purpose::URL_SAFE,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ];
        for e in engines {
            if let Ok(b) = e.decode(t) {
                return Self::from_bytes(&b);
            }
        }
        Err(VaultError::Config(
            "vault key must be 32 bytes in base64 or hex".into(),
        ))
    }

    /// Seals a value bound to `aad`: version ‖ nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, aad: &[u8], value: &[u8]) -> Result<Vec<u8>, VaultError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce)
            .map_err(|_| VaultError::Config("no randomness".into()))?;
        let mut buf = Vec::with_capacity(1 + NONCE_LEN + value.len() + 16);
        buf.push(SEALED_V1);
        buf.extend_from_slice(&nonce);
        let mut body = value.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut body,
            )
            .map_err(|_| VaultError::Config("seal failed".into()))?;
        buf.extend_from_slice(&body);
        Ok(buf)
    }

    /// Opens a sealed value bound to `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, VaultError> {
        let (ver, rest) = sealed.split_first().ok_or(VaultError::Decrypt)?;
        if *ver != SEALED_V1 || rest.len() < NONCE_LEN + 16 {
            return Err(VaultError::Decrypt);
        }
        let (n, ct) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(n).map_err(|_| VaultError::Decrypt)?;
        let mut body = ct.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(aad), &mut body)
            .map_err(|_| VaultError::Decrypt)?;
        Ok(plain.to_vec())
    }
}

// ---------------------------------------------------------------- redis

/// Redis key of one placeholder.
pub fn vault_key(scope: &str, placeholder: &str) -> String {
    format!("v:{{{}}}:{placeholder}", escape_tag(scope))
}

/// Redis vault: values sealed with AES-256-GCM, TTL via `SET .. PX`.
pub struct RedisVault {
    conn: ConnectionManager,
    key: VaultKey,
    timeout: Duration,
}

impl fmt::Debug for RedisVault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisVault").finish_non_exhaustive()
    }
}

impl RedisVault {
    /// Builds the vault; connects lazily. Must be called inside a Tokio runtime.
    pub fn new(url: &str, key: VaultKey, timeout: Duration) -> Result<Self, VaultError> {
        let conn = super::redis::connection_manager(url, timeout, timeout)
            .map_err(|e| VaultError::Config(e.to_string()))?;
        Ok(Self { conn, key, timeout })
    }

    async fn run<T: ::redis::FromRedisValue>(&self, cmd: RedisOp) -> Result<T, VaultError> {
        let mut conn = self.conn.clone();
        let fut = async {
            match cmd {
                RedisOp::Cmd(c) => c.query_async::<T>(&mut conn).await,
                RedisOp::Pipe(p) => p.query_async::<T>(&mut conn).await,
            }
        };
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(VaultError::Unavailable(e.to_string())),
            Err(_) => Err(VaultError::Unavailable("timed out".into())),
        }
    }

    fn seal_for(
        &self,
        scope: &str,
        placeholder: &str,
        value: &str,
    ) -> Result<(String, Vec<u8>), VaultError> {
        let k = vault_key(scope, placeholder);
        let sealed = self.key.seal(k.as_bytes(), value.as_bytes())?;
        Ok((k, sealed))
    }

    fn open_for(
        &self,
        scope: &str,
        placeholder: &str,
        sealed: Option<Vec<u8>>,
    ) -> Result<Option<String>, VaultError> {
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let k = vault_key(scope, placeholder);
        let plain = self.key.open(k.as_bytes(), &sealed)?;
        String::from_utf8(plain)
            .map(Some)
            .map_err(|_| VaultError::Decrypt)
    }

    async fn put_all(
        &self,
        scope: &str,
        entries: &[(&str, &str)],
        ttl: Duration,
    ) -> Result<(), VaultError> {
        if entries.is_empty() {
            return Ok(());
        }
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut pipe = ::redis::pipe();
        for (p, v) in entries {
            let (k, sealed) = self.seal_for(scope, p, v)?;
            pipe.cmd("SET")
                .arg(k)
                .arg(sealed)
                .arg("PX")
                .arg(ms)
                .ignore();
        }
        self.run::<()>(RedisOp::Pipe(pipe)).await
    }

    async fn get_all(
        &self,
        scope: &str,
        placeholders: &[&str],
    ) -> Result<Vec<Option<String>>, VaultError> {
        if placeholders.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = ::redis::cmd("MGET");
        for p in placeholders {
            cmd.arg(vault_key(scope, p));
        }
        let raw: Vec<Option<Vec<u8>>> = self.run(RedisOp::Cmd(cmd)).await?;
        if raw.len() != placeholders.len() {
            return Err(VaultError::Unavailable(
                "MGET answered a different count".into(),
            ));
        }
        placeholders
            .iter()
            .zip(raw)
            .map(|(p, s)| self.open_for(scope, p, s))
            .collect()
    }
}

enum RedisOp {
    Cmd(::redis::Cmd),
    Pipe(::redis::Pipeline),
}

impl PseudonymVault for RedisVault {
    fn put<'a>(
        &'a self,
        scope: &'a str,
        placeholder: &'a str,
        value: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), VaultError>> {
        Box::pin(async move { self.put_all(scope, &[(placeholder, value)], ttl).await })
    }

    fn put_many<'a>(
        &'a self,
        scope: &'a str,
        entries: &'a [(&'a str, &'a str)],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), VaultError>> {
        Box::pin(self.put_all(scope, entries, ttl))
    }

    fn get<'a>(
        &'a self,
        scope: &'a str,
        placeholder: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, VaultError>> {
        Box::pin(async move {
            let mut v = self.get_all(scope, &[placeholder]).await?;
            Ok(v.pop().flatten())
        })
    }

    fn get_many<'a>(
        &'a self,
        scope: &'a str,
        placeholders: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Vec<Option<String>>, VaultError>> {
        Box::pin(self.get_all(scope, placeholders))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenancy::clock::FakeClock;

    #[tokio::test]
    async fn memory_round_trip_and_ttl() {
        let c = Arc::new(FakeClock::new(1_000_000));
        let v = MemoryVault::with_clock(100, c.clone());
        v.put(
            "conv1",
            "<EMAIL_1>",
            "kim@example.com",
            Duration::from_secs(60),
        )
        .await
        .ok();
        v.put_many(
            "conv1",
            &[("<PHONE_1>", "010-1234-5678"), ("<NAME_1>", "김민수")],
            Duration::from_secs(10),
        )
        .await
        .ok();
        let got = v
            .get_many("conv1", &["<EMAIL_1>", "<NAME_1>", "<NONE>"])
            .await
            .ok();
        assert_eq!(
            got,
            Some(vec![
                Some("kim@example.com".into()),
                Some("김민수".into()),
                None
            ])
        );
        assert_eq!(
            v.get("conv2", "<EMAIL_1>").await.ok(),
            Some(None),
            "scopes are separate"
        );
        c.advance(Duration::from_secs(10));
        assert_eq!(
            v.get("conv1", "<PHONE_1>").await.ok(),
            Some(None),
            "expired at TTL"
        );
        assert_eq!(
            v.get("conv1", "<EMAIL_1>").await.ok(),
            Some(Some("kim@example.com".into()))
        );
    }

    #[tokio::test]
    async fn memory_evicts_oldest_beyond_bound() {
        let v = MemoryVault::new(3);
        let ttl = Duration::from_secs(60);
        for (p, val) in [("a", "1"), ("b", "2"), ("c", "3"), ("a", "1b"), ("d", "4")] {
            v.put("s", p, val, ttl).await.ok();
        }
        assert_eq!(v.len(), 3);
        // "b" is the oldest live entry ("a" was rewritten after it).
        let got = v.get_many("s", &["a", "b", "c", "d"]).await.ok();
        assert_eq!(
            got,
            Some(vec![
                Some("1b".into()),
                None,
                Some("3".into()),
                Some("4".into())
            ])
        );
        for i in 0..50 {
            v.put("s", "a", &i.to_string(), ttl).await.ok();
        }
        assert!(v.lock().order.len() <= 7, "stale rows are compacted");
    }

    #[test]
    fn sealing_binds_value_to_key() {
        let Ok(k) = VaultKey::parse(&"11".repeat(32)) else {
            panic!("key")
        };
        let Ok(s) = k.seal(b"v:{c}:<E_1>", b"secret@example.com") else {
            panic!("seal")
        };
        assert!(!s.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            k.open(b"v:{c}:<E_1>", &s).ok(),
            Some(b"secret@example.com".to_vec())
        );
        assert!(
            matches!(k.open(b"v:{c}:<E_2>", &s), Err(VaultError::Decrypt)),
            "moved value"
        );
        let mut t = s.clone();
        if let Some(b) = t.last_mut() {
            *b ^= 1;
        }
        assert!(
            matches!(k.open(b"v:{c}:<E_1>", &t), Err(VaultError::Decrypt)),
            "tampered"
        );
        let Ok(other) = VaultKey::from_bytes(&[7u8; 32]) else {
            panic!("key")
        };
        assert!(
            matches!(other.open(b"v:{c}:<E_1>", &s), Err(VaultError::Decrypt)),
            "wrong key"
        );
        assert_ne!(
            k.seal(b"a", b"x").ok(),
            k.seal(b"a", b"x").ok(),
            "fresh nonce each time"
        );
    }

    #[test]
    fn key_parsing() {
        let b64 = base64::engine::general_purpose::STANDARD.encode([3u8; 32]);
        assert!(VaultKey::parse(&b64).is_ok());
        assert!(VaultKey::parse(&"ab".repeat(32)).is_ok());
        assert!(VaultKey::parse("c2hvcnQ=").is_err());
        assert_eq!(
            format!("{:?}", VaultKey::parse(&b64).ok()),
            "Some(VaultKey(..))"
        );
        assert_eq!(vault_key("c{1}", "<EMAIL_1>"), "v:{c%7B1%7D}:<EMAIL_1>");
    }
}
