//! The on-disk registry, all under one root (`<data_dir>/registry/`):
//!
//! ```text
//! blobs/sha256/<hex>                       content-addressed blobs (layers, configs, manifests)
//! repositories/<name>/_manifests/<hex>     "this repository has manifest <hex>", holding its media type
//! repositories/<name>/_tags/<tag>          "sha256:<hex>" the tag points at
//! uploads/<uuid>                           blob upload sessions in progress
//! tmp/                                     files being written, renamed into place when complete
//! ```
//!
//! `_manifests` and `_tags` start with `_`, which no repository name component may, so names
//! with `/` never collide with them. Every write is durable before it is acknowledged: the file
//! is fsynced, renamed into place, and its directory fsynced. Blobs only ever appear under
//! `blobs/` with content matching their name. These functions block; async callers run them on
//! the blocking pool.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{
    manifest, validate_name, Digest, Reference, RegistryError, DEFAULT_MAX_UPLOAD_BYTES,
    DEFAULT_STALE_UPLOAD_SECS,
};

const MANIFESTS: &str = "_manifests";
const TAGS: &str = "_tags";

/// Buffer for hashing and copying files: large enough that syscalls don't dominate.
const DEFAULT_COPY_BUFFER_BYTES: usize = 256 * 1024;

type Result<T> = std::result::Result<T, RegistryError>;

/// The cluster image store on disk. Cheap to share (`Arc`); holds no open files.
#[derive(Debug)]
pub struct Registry {
    root: PathBuf,
    max_upload: u64,
}

impl Registry {
    /// Opens (creating if needed) the store at `root`, discarding half-written temp files and
    /// upload sessions older than [`DEFAULT_STALE_UPLOAD_SECS`].
    pub fn open(root: &Path) -> Result<Registry> {
        let reg = Registry {
            root: root.to_path_buf(),
            max_upload: DEFAULT_MAX_UPLOAD_BYTES,
        };
        for dir in [
            reg.blobs_dir(),
            reg.uploads_dir(),
            reg.tmp_dir(),
            reg.repos_dir(),
        ] {
            reg.ensure_dir(&dir)?;
        }
        let tmp = reg.tmp_dir();
        for entry in fs::read_dir(&tmp).map_err(|e| RegistryError::io(&tmp, e))? {
            let entry = entry.map_err(|e| RegistryError::io(&tmp, e))?;
            let _ = fs::remove_file(entry.path());
        }
        let stale = Duration::from_secs(DEFAULT_STALE_UPLOAD_SECS);
        let uploads = reg.uploads_dir();
        for entry in fs::read_dir(&uploads).map_err(|e| RegistryError::io(&uploads, e))? {
            let entry = entry.map_err(|e| RegistryError::io(&uploads, e))?;
            let age = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok());
            if age.is_some_and(|a| a > stale) {
                tracing::info!(upload = %entry.path().display(), "removing a stale image upload");
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(reg)
    }

    /// Sets the largest blob one upload may carry (default [`DEFAULT_MAX_UPLOAD_BYTES`]).
    pub fn with_max_upload(mut self, bytes: u64) -> Registry {
        self.max_upload = bytes;
        self
    }

    pub fn max_upload(&self) -> u64 {
        self.max_upload
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    fn uploads_dir(&self) -> PathBuf {
        self.root.join("uploads")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn repos_dir(&self) -> PathBuf {
        self.root.join("repositories")
    }

    fn repo_dir(&self, name: &str) -> PathBuf {
        let mut p = self.repos_dir();
        p.extend(name.split('/'));
        p
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    /// The size of a stored blob, or None.
    pub fn blob_len(&self, digest: &Digest) -> Result<Option<u64>> {
        let p = self.blob_path(digest);
        match fs::metadata(&p) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RegistryError::io(p, e)),
        }
    }

    /// A fresh path under `tmp/` (same filesystem as the blobs, so renames are atomic).
    pub fn temp_path(&self) -> PathBuf {
        self.tmp_dir().join(uuid::Uuid::new_v4().to_string())
    }

    /// Starts a blob upload session; returns its id.
    pub fn start_upload(&self) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let p = self.uploads_dir().join(&id);
        File::create(&p)
            .and_then(|f| f.sync_all())
            .map_err(|e| RegistryError::io(&p, e))?;
        sync_dir(&self.uploads_dir())?;
        Ok(id)
    }

    /// The file of upload session `id`, which must exist.
    pub fn upload_path(&self, name: &str, id: &str) -> Result<PathBuf> {
        let unknown = || RegistryError::UploadUnknown {
            name: name.to_string(),
            id: id.to_string(),
        };
        uuid::Uuid::parse_str(id).map_err(|_| unknown())?;
        let p = self.uploads_dir().join(id);
        if p.is_file() {
            Ok(p)
        } else {
            Err(unknown())
        }
    }

    /// Bytes received so far by upload session `id`.
    pub fn upload_len(&self, name: &str, id: &str) -> Result<u64> {
        let p = self.upload_path(name, id)?;
        fs::metadata(&p)
            .map(|m| m.len())
            .map_err(|e| RegistryError::io(p, e))
    }

    pub fn cancel_upload(&self, name: &str, id: &str) -> Result<()> {
        let p = self.upload_path(name, id)?;
        fs::remove_file(&p).map_err(|e| RegistryError::io(p, e))
    }

    /// Finishes upload session `id`: hashes what it received, and stores it as blob `expected`
    /// if it matches (the session ends either way). Returns the blob's size.
    pub fn finish_upload(&self, name: &str, id: &str, expected: &Digest) -> Result<u64> {
        let p = self.upload_path(name, id)?;
        let actual = match hash_file(&p) {
            Ok(d) => d,
            Err(e) => {
                let _ = fs::remove_file(&p);
                return Err(e);
            }
        };
        self.commit_blob(&p, expected, &actual)
    }

    /// Moves a fully written file into the blob store as `expected`, provided its content
    /// digest `actual` matches; otherwise removes it and answers DIGEST_INVALID.
    pub fn commit_blob(&self, file: &Path, expected: &Digest, actual: &Digest) -> Result<u64> {
        if expected != actual {
            let _ = fs::remove_file(file);
            return Err(RegistryError::DigestInvalid {
                digest: expected.to_string(),
                reason: format!("the uploaded content's digest is {actual}"),
            });
        }
        let len = (|| {
            let f = OpenOptions::new().write(true).open(file)?;
            f.sync_all()?;
            f.metadata().map(|m| m.len())
        })()
        .map_err(|e| RegistryError::io(file, e))?;
        let dest = self.blob_path(expected);
        if dest.is_file() {
            // Same content already stored (content-addressed): nothing to replace.
            let _ = fs::remove_file(file);
            return Ok(len);
        }
        if let Err(e) = fs::rename(file, &dest) {
            let _ = fs::remove_file(file);
            return Err(RegistryError::io(dest, e));
        }
        sync_dir(&self.blobs_dir())?;
        tracing::debug!(digest = %expected, bytes = len, "stored blob");
        Ok(len)
    }

    /// Stores `bytes` as a blob; returns its digest.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of(bytes);
        if self.blob_len(&digest)?.is_some() {
            return Ok(digest);
        }
        let tmp = self.temp_path();
        write_file(&tmp, bytes)?;
        self.commit_blob(&tmp, &digest, &digest)?;
        Ok(digest)
    }

    /// Reads a whole blob (manifests only: they are small).
    pub fn read_blob(&self, digest: &Digest) -> Result<Option<Vec<u8>>> {
        let p = self.blob_path(digest);
        match fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RegistryError::io(p, e)),
        }
    }

    /// Validates and stores a manifest under `name`, tagging it if `reference` is a tag.
    /// Returns its digest.
    pub fn put_manifest(
        &self,
        name: &str,
        reference: &Reference,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Digest> {
        validate_name(name)?;
        let image = reference.image(name);
        let digest = Digest::of(body);
        if let Reference::Digest(d) = reference {
            if *d != digest {
                return Err(RegistryError::DigestInvalid {
                    digest: d.to_string(),
                    reason: format!("the manifest's content digest is {digest}"),
                });
            }
        }
        let media_type = manifest::validate(self, name, &image, content_type, body)?;
        self.put_blob(body)?;
        let repo = self.repo_dir(name);
        let manifests = repo.join(MANIFESTS);
        self.ensure_dir(&manifests)?;
        self.write_durable(&manifests.join(digest.hex()), media_type.as_bytes())?;
        if let Reference::Tag(tag) = reference {
            let tags = repo.join(TAGS);
            self.ensure_dir(&tags)?;
            self.write_durable(&tags.join(tag), digest.to_string().as_bytes())?;
        }
        tracing::info!(image = %image, %digest, %media_type, "stored manifest");
        Ok(digest)
    }

    /// Whether repository `name` holds manifest `digest`.
    pub fn has_manifest(&self, name: &str, digest: &Digest) -> bool {
        self.repo_dir(name)
            .join(MANIFESTS)
            .join(digest.hex())
            .is_file()
            && self.blob_path(digest).is_file()
    }

    /// The digest and media type `reference` names in repository `name`.
    pub fn resolve(&self, name: &str, reference: &Reference) -> Result<(Digest, String)> {
        validate_name(name)?;
        let unknown = || RegistryError::ManifestUnknown {
            image: reference.image(name),
        };
        let repo = self.repo_dir(name);
        let digest = match reference {
            Reference::Digest(d) => d.clone(),
            Reference::Tag(t) => {
                let p = repo.join(TAGS).join(t);
                match fs::read_to_string(&p) {
                    Ok(s) => Digest::parse(s.trim()).map_err(|_| {
                        RegistryError::io(&p, std::io::Error::other("corrupt tag file"))
                    })?,
                    Err(e) if e.kind() == ErrorKind::NotFound => return Err(unknown()),
                    Err(e) => return Err(RegistryError::io(p, e)),
                }
            }
        };
        let p = repo.join(MANIFESTS).join(digest.hex());
        let media_type = match fs::read_to_string(&p) {
            Ok(s) => s.trim().to_string(),
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(unknown()),
            Err(e) => return Err(RegistryError::io(p, e)),
        };
        if self.blob_len(&digest)?.is_none() {
            return Err(unknown());
        }
        Ok((digest, media_type))
    }

    /// The manifest `reference` names: digest, media type and content.
    pub fn get_manifest(
        &self,
        name: &str,
        reference: &Reference,
    ) -> Result<(Digest, String, Vec<u8>)> {
        let (digest, media_type) = self.resolve(name, reference)?;
        let body = self
            .read_blob(&digest)?
            .ok_or_else(|| RegistryError::ManifestUnknown {
                image: reference.image(name),
            })?;
        Ok((digest, media_type, body))
    }

    /// Tags of repository `name`, sorted.
    pub fn tags(&self, name: &str) -> Result<Vec<String>> {
        validate_name(name)?;
        let repo = self.repo_dir(name);
        if !repo.join(MANIFESTS).is_dir() {
            return Err(RegistryError::NameUnknown {
                name: name.to_string(),
            });
        }
        let dir = repo.join(TAGS);
        let mut tags = Vec::new();
        match fs::read_dir(&dir) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry.map_err(|e| RegistryError::io(&dir, e))?;
                    if let Some(t) = entry.file_name().to_str() {
                        tags.push(t.to_string());
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(RegistryError::io(dir, e)),
        }
        tags.sort();
        Ok(tags)
    }

    /// Names of all repositories holding at least one manifest, sorted.
    pub fn catalog(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let mut stack = vec![(self.repos_dir(), String::new())];
        while let Some((dir, prefix)) = stack.pop() {
            let entries = fs::read_dir(&dir).map_err(|e| RegistryError::io(&dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| RegistryError::io(&dir, e))?;
                let Some(file) = entry.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                if file == MANIFESTS {
                    names.push(prefix.clone());
                } else if !file.starts_with('_') {
                    let name = if prefix.is_empty() {
                        file
                    } else {
                        format!("{prefix}/{file}")
                    };
                    stack.push((entry.path(), name));
                }
            }
        }
        names.sort();
        Ok(names)
    }

    /// Writes `bytes` to `dest` durably: temp file, fsync, rename, fsync of the directory.
    fn write_durable(&self, dest: &Path, bytes: &[u8]) -> Result<()> {
        let tmp = self.temp_path();
        write_file(&tmp, bytes)?;
        if let Err(e) = fs::rename(&tmp, dest) {
            let _ = fs::remove_file(&tmp);
            return Err(RegistryError::io(dest, e));
        }
        match dest.parent() {
            Some(parent) => sync_dir(parent),
            None => Ok(()),
        }
    }

    /// Creates `dir` and any missing parents, fsyncing each parent a directory was added to,
    /// so a new repository's path survives a crash along with the files written into it.
    fn ensure_dir(&self, dir: &Path) -> Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        if let Some(parent) = dir.parent() {
            self.ensure_dir(parent)?;
            match fs::create_dir(dir) {
                Ok(()) => sync_dir(parent)?,
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(RegistryError::io(dir, e)),
            }
        }
        Ok(())
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let res = (|| {
        let mut f = File::create(path)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    res.map_err(|e| {
        let _ = fs::remove_file(path);
        RegistryError::io(path, e)
    })
}

/// fsyncs a directory so entries added to (or renamed into) it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| RegistryError::io(dir, e))
}

/// The sha256 digest of a file's content.
pub fn hash_file(path: &Path) -> Result<Digest> {
    use sha2::Digest as _;
    let mut f = File::open(path).map_err(|e| RegistryError::io(path, e))?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; DEFAULT_COPY_BUFFER_BYTES];
    loop {
        let n = f.read(&mut buf).map_err(|e| RegistryError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(Digest::from_hasher(hasher))
}
