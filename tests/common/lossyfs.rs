//! LossyFs: an in-memory FUSE filesystem that models a power cut, for tests/power_loss.rs.
//!
//! What it models (deliberately at least as strict as ext4 `data=ordered`):
//! - A regular file has its `current` bytes (what reads see) and its `durable` bytes: the
//!   `current` bytes as of its last `fsync`/`fdatasync` (both are treated alike, and both also
//!   make the file's size durable). A file never synced has no durable bytes: after a power
//!   cut it is empty, even if its directory entry survived (ext4 `data=ordered` would at least
//!   write the data of a file whose metadata is committed; this does not).
//! - A directory has its `current` entries and its `durable` entries. A created, renamed or
//!   unlinked entry becomes durable when its directory is fsynced (`fsyncdir`: the directory's
//!   entries as they are then, removals included), or, for the entries that *name* an inode,
//!   when that inode is fsynced (a file's fsync makes its current names durable, as ext4's
//!   journal commit would; it does not make the removal of its old names durable). Nothing
//!   makes the parent's own entry durable except a sync of the parent or of its parent.
//! - Attributes other than size (mode, owner, times) are not tracked for durability: the
//!   `current` ones carry over. No hard links, symlinks, xattrs or `fallocate`: those answer
//!   ENOSYS and are counted in [`LossyMount::unsupported`].
//! - [`LossyMount::power_cut`]: the filesystem freezes (from then on every operation fails
//!   with EIO, so nothing more can become durable), the caller's process is killed, the
//!   filesystem is unmounted, and the next mount (same path) holds exactly the durable state:
//!   every inode reachable from the root through durable entries, with its durable bytes.
//! - Not modelled: torn or partly persisted unsynced writes (all of them are lost, none kept).
//!
//! The model is here; the FUSE request handlers are in `lossyfs/fuse.rs`.
#![allow(dead_code)]

mod fuse;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use fuser::{BackgroundSession, Errno, FileAttr, FileType, INodeNo, RenameFlags, Request};

use fuse::spawn;

const ROOT: u64 = 1;
/// Upper bound for an unmount (the session thread ends when the kernel drops the connection).
const UNMOUNT_BOUND: Duration = Duration::from_secs(20);

#[derive(Clone)]
struct Node {
    dir: bool,
    perm: u16,
    uid: u32,
    gid: u32,
    mtime: SystemTime,
    ctime: SystemTime,
    data: Vec<u8>,
    durable_data: Vec<u8>,
    entries: BTreeMap<OsString, u64>,
    durable_entries: BTreeMap<OsString, u64>,
}

impl Node {
    fn new(dir: bool, perm: u16, uid: u32, gid: u32) -> Node {
        let now = SystemTime::now();
        Node {
            dir,
            perm,
            uid,
            gid,
            mtime: now,
            ctime: now,
            data: Vec::new(),
            durable_data: Vec::new(),
            entries: BTreeMap::new(),
            durable_entries: BTreeMap::new(),
        }
    }
}

/// The whole filesystem. Inodes are never freed while mounted (an unlinked or replaced inode
/// may still be named by a durable entry); a power cut keeps only the reachable ones.
struct Tree {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    frozen: bool,
    unsupported: BTreeMap<&'static str, u64>,
    fsyncs: u64,
}

impl Tree {
    fn new() -> Tree {
        let mut nodes = HashMap::new();
        nodes.insert(ROOT, Node::new(true, 0o755, 0, 0));
        Tree {
            nodes,
            next_ino: ROOT + 1,
            frozen: false,
            unsupported: BTreeMap::new(),
            fsyncs: 0,
        }
    }

    /// What a power cut leaves: the durable state of everything reachable from the root.
    fn after_power_loss(&self) -> Tree {
        let mut nodes = HashMap::new();
        let mut queue = VecDeque::from([ROOT]);
        while let Some(ino) = queue.pop_front() {
            if nodes.contains_key(&ino) {
                continue;
            }
            let Some(n) = self.nodes.get(&ino) else {
                continue;
            };
            let mut kept = n.clone();
            kept.data = n.durable_data.clone();
            kept.entries = n.durable_entries.clone();
            queue.extend(kept.entries.values().copied());
            nodes.insert(ino, kept);
        }
        Tree {
            nodes,
            next_ino: self.next_ino,
            frozen: false,
            unsupported: self.unsupported.clone(),
            fsyncs: self.fsyncs,
        }
    }

    fn node(&self, ino: u64) -> Result<&Node, Errno> {
        self.nodes.get(&ino).ok_or(Errno::ENOENT)
    }

    fn node_mut(&mut self, ino: u64) -> Result<&mut Node, Errno> {
        self.nodes.get_mut(&ino).ok_or(Errno::ENOENT)
    }

    fn dir(&self, ino: u64) -> Result<&Node, Errno> {
        let n = self.node(ino)?;
        if !n.dir {
            return Err(Errno::ENOTDIR);
        }
        Ok(n)
    }

    fn child(&self, parent: u64, name: &OsStr) -> Result<u64, Errno> {
        self.dir(parent)?
            .entries
            .get(name)
            .copied()
            .ok_or(Errno::ENOENT)
    }

    fn attr(&self, ino: u64) -> Result<FileAttr, Errno> {
        let n = self.node(ino)?;
        let size = if n.dir { 4096 } else { n.data.len() as u64 };
        Ok(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: n.mtime,
            mtime: n.mtime,
            ctime: n.ctime,
            crtime: n.ctime,
            kind: if n.dir {
                FileType::Directory
            } else {
                FileType::RegularFile
            },
            perm: n.perm,
            nlink: if n.dir { 2 } else { 1 },
            uid: n.uid,
            gid: n.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    /// A new file or directory `name` in `parent`.
    fn add(
        &mut self,
        req: &Request,
        parent: u64,
        name: &OsStr,
        dir: bool,
        mode: u32,
        umask: u32,
    ) -> Result<u64, Errno> {
        if self.dir(parent)?.entries.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        let perm = (mode & !umask & 0o7777) as u16;
        self.nodes
            .insert(ino, Node::new(dir, perm, req.uid(), req.gid()));
        let p = self.node_mut(parent)?;
        p.entries.insert(name.to_os_string(), ino);
        p.mtime = SystemTime::now();
        Ok(ino)
    }

    fn remove(&mut self, parent: u64, name: &OsStr, dir: bool) -> Result<(), Errno> {
        let ino = self.child(parent, name)?;
        let n = self.node(ino)?;
        match (dir, n.dir) {
            (true, false) => return Err(Errno::ENOTDIR),
            (false, true) => return Err(Errno::EISDIR),
            (true, true) if !n.entries.is_empty() => return Err(Errno::ENOTEMPTY),
            _ => {}
        }
        let p = self.node_mut(parent)?;
        p.entries.remove(name);
        p.mtime = SystemTime::now();
        Ok(())
    }

    fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: RenameFlags,
    ) -> Result<(), Errno> {
        if flags.intersects(RenameFlags::RENAME_EXCHANGE | RenameFlags::RENAME_WHITEOUT) {
            return Err(Errno::EINVAL);
        }
        let ino = self.child(parent, name)?;
        self.dir(newparent)?;
        if let Ok(old) = self.child(newparent, newname) {
            if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                return Err(Errno::EEXIST);
            }
            if old == ino {
                return Ok(());
            }
            let (moving, target) = (self.node(ino)?, self.node(old)?);
            match (moving.dir, target.dir) {
                (false, true) => return Err(Errno::EISDIR),
                (true, false) => return Err(Errno::ENOTDIR),
                (true, true) if !target.entries.is_empty() => return Err(Errno::ENOTEMPTY),
                _ => {}
            }
        }
        let now = SystemTime::now();
        let p = self.node_mut(parent)?;
        p.entries.remove(name);
        p.mtime = now;
        let np = self.node_mut(newparent)?;
        np.entries.insert(newname.to_os_string(), ino);
        np.mtime = now;
        self.node_mut(ino)?.ctime = now;
        Ok(())
    }

    /// fsync / fdatasync / fsyncdir of `ino`: its bytes (a file) or entries (a directory) as
    /// they are now, and every entry that names it now.
    fn sync(&mut self, ino: u64) -> Result<(), Errno> {
        self.fsyncs += 1;
        let n = self.node_mut(ino)?;
        if n.dir {
            n.durable_entries = n.entries.clone();
        } else {
            n.durable_data.clone_from(&n.data);
        }
        let names: Vec<(u64, OsString)> = self
            .nodes
            .iter()
            .flat_map(|(p, n)| {
                n.entries
                    .iter()
                    .filter(|(_, child)| **child == ino)
                    .map(|(name, _)| (*p, name.clone()))
            })
            .collect();
        for (p, name) in names {
            self.node_mut(p)?.durable_entries.insert(name, ino);
        }
        Ok(())
    }
}

fn lock(tree: &Mutex<Tree>) -> MutexGuard<'_, Tree> {
    tree.lock().unwrap_or_else(|p| p.into_inner())
}

/// A LossyFs mounted at `<tempdir>/mnt`, its session on a thread of its own; unmounted on drop.
pub struct LossyMount {
    tree: Arc<Mutex<Tree>>,
    session: Option<BackgroundSession>,
    mountpoint: PathBuf,
    // Dropped after the session (fields drop in order).
    _dir: tempfile::TempDir,
}

impl LossyMount {
    /// An empty filesystem, mounted.
    pub fn mount() -> Result<LossyMount> {
        let dir = tempfile::tempdir()?;
        let mountpoint = dir.path().join("mnt");
        std::fs::create_dir(&mountpoint)?;
        let tree = Arc::new(Mutex::new(Tree::new()));
        let session = spawn(&tree, &mountpoint)?;
        Ok(LossyMount {
            tree,
            session: Some(session),
            mountpoint,
            _dir: dir,
        })
    }

    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// The power cut: freeze, run `kill` (the processes using the filesystem die), unmount,
    /// and mount again at the same path with only what was durable.
    pub fn power_cut(&mut self, kill: impl FnOnce()) -> Result<()> {
        lock(&self.tree).frozen = true;
        kill();
        self.unmount()?;
        let survivor = lock(&self.tree).after_power_loss();
        *lock(&self.tree) = survivor;
        self.session = Some(spawn(&self.tree, &self.mountpoint)?);
        Ok(())
    }

    /// The operations answered ENOSYS so far, with their counts.
    pub fn unsupported(&self) -> BTreeMap<&'static str, u64> {
        lock(&self.tree).unsupported.clone()
    }

    /// How many fsync, fdatasync and fsyncdir calls reached the filesystem.
    pub fn fsyncs(&self) -> u64 {
        lock(&self.tree).fsyncs
    }

    fn unmount(&mut self) -> Result<()> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(session.umount_and_join());
        });
        match rx.recv_timeout(UNMOUNT_BOUND) {
            Ok(r) => r.with_context(|| format!("unmounting {}", self.mountpoint.display())),
            Err(_) => {
                // A stuck unmount: detach it so the test can end, and say so.
                let _ = std::process::Command::new("umount")
                    .arg("-l")
                    .arg(&self.mountpoint)
                    .output();
                bail!(
                    "unmounting {} took over {UNMOUNT_BOUND:?}",
                    self.mountpoint.display()
                )
            }
        }
    }
}

impl Drop for LossyMount {
    fn drop(&mut self) {
        lock(&self.tree).frozen = true;
        if let Err(e) = self.unmount() {
            eprintln!("lossyfs: {e:#}");
        }
    }
}
