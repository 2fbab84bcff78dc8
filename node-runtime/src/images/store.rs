//! The node-local image store:
//!
//! ```text
//! blobs/sha256/<hex>     verified content: layers, configs, manifests
//! refs/<escaped ref>     "sha256:<hex>": the manifest a reference last resolved to
//! tmp/                   downloads in progress (emptied on open)
//! ```
//!
//! Content only enters `blobs/` by an atomic rename after it was fsynced (and verified by the
//! caller), and a ref is only written once everything it leads to is in `blobs/`, so a crash
//! never leaves a ref to missing content.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::Digest as _;
use tokio::io::AsyncWriteExt;

/// Failed store operation: what was being done, on which path, and why.
#[derive(Debug, thiserror::Error)]
#[error("{context} {path}: {source}")]
pub struct StoreError {
    pub context: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

fn err<'a>(
    context: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError {
        context,
        path: path.to_path_buf(),
        source,
    }
}

/// Ref file names longer than this are replaced by a hash (file names stop at 255 bytes).
const MAX_REF_FILE_NAME: usize = 200;

#[derive(Debug)]
pub struct LocalStore {
    root: PathBuf,
    counter: AtomicU64,
}

impl LocalStore {
    /// Opens (creating) the store at `root` and discards half-finished downloads.
    pub fn open(root: &Path) -> Result<LocalStore, StoreError> {
        let s = LocalStore {
            root: root.to_path_buf(),
            counter: AtomicU64::new(0),
        };
        for d in [s.blobs_dir(), s.refs_dir(), s.tmp_dir()] {
            std::fs::create_dir_all(&d).map_err(err("cannot create", &d))?;
        }
        let tmp = s.tmp_dir();
        for entry in std::fs::read_dir(&tmp).map_err(err("cannot list", &tmp))? {
            let entry = entry.map_err(err("cannot list", &tmp))?;
            let _ = std::fs::remove_file(entry.path());
        }
        Ok(s)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    fn refs_dir(&self) -> PathBuf {
        self.root.join("refs")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Where blob `digest` lives; None unless it is `sha256:<64 lowercase hex>`.
    pub fn blob_path(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest.strip_prefix("sha256:")?;
        let ok = hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        ok.then(|| self.blobs_dir().join(hex))
    }

    /// Whether blob `digest` is stored (with `size` bytes, when given).
    pub async fn has_blob(&self, digest: &str, size: Option<i64>) -> bool {
        let Some(p) = self.blob_path(digest) else {
            return false;
        };
        match tokio::fs::metadata(&p).await {
            Ok(m) => size.is_none_or(|s| i64::try_from(m.len()).ok() == Some(s)),
            Err(_) => false,
        }
    }

    /// A whole blob (for manifests), or None if absent.
    pub async fn read_blob(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(p) = self.blob_path(digest) else {
            return Ok(None);
        };
        match tokio::fs::read(&p).await {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(err("cannot read", &p)(e)),
        }
    }

    /// A fresh path for a download in progress.
    pub fn temp_path(&self) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        self.tmp_dir()
            .join(format!("{}-{n}-{nanos}", std::process::id()))
    }

    /// Makes the verified file `tmp` blob `digest`: fsync, rename, fsync of `blobs/`.
    pub async fn commit(&self, tmp: &Path, digest: &str) -> Result<PathBuf, StoreError> {
        let dest = self.blob_path(digest).ok_or_else(|| StoreError {
            context: "invalid digest for",
            path: tmp.to_path_buf(),
            source: std::io::Error::other(format!("{digest:?} is not a sha256 digest")),
        })?;
        let f = tokio::fs::OpenOptions::new()
            .write(true)
            .open(tmp)
            .await
            .map_err(err("cannot open", tmp))?;
        f.sync_all().await.map_err(err("cannot sync", tmp))?;
        drop(f);
        if let Err(e) = tokio::fs::rename(tmp, &dest).await {
            let _ = tokio::fs::remove_file(tmp).await;
            return Err(err("cannot store", &dest)(e));
        }
        sync_dir(&self.blobs_dir()).await?;
        Ok(dest)
    }

    /// Stores `bytes` as a blob (replacing any copy: this is for small manifests, and a
    /// rewrite repairs a damaged one); returns its digest and path.
    pub async fn put_bytes(&self, bytes: &[u8]) -> Result<(String, PathBuf), StoreError> {
        let digest = sha256_digest(bytes);
        let tmp = self.temp_path();
        let mut f = tokio::fs::File::create(&tmp)
            .await
            .map_err(err("cannot create", &tmp))?;
        f.write_all(bytes)
            .await
            .map_err(err("cannot write", &tmp))?;
        f.flush().await.map_err(err("cannot write", &tmp))?;
        drop(f);
        let p = self.commit(&tmp, &digest).await?;
        Ok((digest, p))
    }

    fn ref_path(&self, key: &str) -> PathBuf {
        let mut name = String::with_capacity(key.len() * 2);
        for b in key.bytes() {
            if b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_' {
                name.push(b as char);
            } else {
                name.push_str(&format!("%{b:02X}"));
            }
        }
        if name.len() > MAX_REF_FILE_NAME {
            name = format!("h-{}", &sha256_digest(key.as_bytes())["sha256:".len()..]);
        }
        self.refs_dir().join(name)
    }

    /// The manifest digest reference `key` resolved to when last pulled.
    pub async fn read_ref(&self, key: &str) -> Result<Option<String>, StoreError> {
        let p = self.ref_path(key);
        match tokio::fs::read_to_string(&p).await {
            Ok(s) => {
                let d = s.trim().to_string();
                Ok(self.blob_path(&d).map(|_| d))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(err("cannot read", &p)(e)),
        }
    }

    /// Durably records that reference `key` resolves to `digest`.
    pub async fn write_ref(&self, key: &str, digest: &str) -> Result<(), StoreError> {
        let dest = self.ref_path(key);
        let tmp = self.temp_path();
        let mut f = tokio::fs::File::create(&tmp)
            .await
            .map_err(err("cannot create", &tmp))?;
        f.write_all(format!("{digest}\n").as_bytes())
            .await
            .map_err(err("cannot write", &tmp))?;
        f.sync_all().await.map_err(err("cannot sync", &tmp))?;
        drop(f);
        if let Err(e) = tokio::fs::rename(&tmp, &dest).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(err("cannot write", &dest)(e));
        }
        sync_dir(&self.refs_dir()).await
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    hex_digest(sha2::Sha256::digest(bytes).as_slice())
}

/// `sha256:<hex>` from a finished hash.
pub fn hex_digest(out: &[u8]) -> String {
    let mut s = String::with_capacity(7 + 64);
    s.push_str("sha256:");
    for b in out {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

async fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    let d = dir.to_path_buf();
    tokio::task::spawn_blocking(move || std::fs::File::open(&d).and_then(|f| f.sync_all()))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|r| r)
        .map_err(err("cannot sync", dir))
}
