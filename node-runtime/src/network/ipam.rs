//! Pod addresses for Wasm pods, from the same pool as container pods. The CNI `host-local`
//! plugin gives container pods their addresses and keeps its allocations as one file per
//! address (named by the address, holding the owner's id) in `<dataDir>/<network>/`, under an
//! exclusive `flock` on `<dataDir>/<network>/lock`. Wasm pods have no CNI sandbox, so the agent
//! reserves their addresses in that same store, under the same lock, with owner ids
//! `skiff-wasm-<pod uid>`: both kinds of pods draw from one range and never collide, and a
//! restarted agent finds each Wasm pod's address again.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;

/// Owner ids of the addresses the agent reserves for Wasm pods (host-local's are container ids).
pub const WASM_OWNER_PREFIX: &str = "skiff-wasm-";
/// The file host-local takes its lock on.
const LOCK_FILE: &str = "lock";
/// Where host-local remembers the last address it handed out from its first range, so the next
/// allocation starts after it (round robin: a freed address is not reused at once).
const LAST_RESERVED_FILE: &str = "last_reserved_ip.0";
/// host-local ends an owner id and the interface name with this.
const LINE_BREAK: &str = "\r\n";
/// The interface name recorded for Wasm pods' addresses (they live on the node's bridge).
const WASM_IFNAME: &str = "wasm";

#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the node's pod range {0} has no free address left (each pod, Wasm or container, takes one; give nodes larger ranges with `skiff server --node-cidr-mask-size`)")]
    Exhausted(Ipv4Net),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> IpamError + '_ {
    move |source| IpamError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The address store of one CNI network (blocking file operations: call from
/// `spawn_blocking`).
pub struct Ipam {
    dir: PathBuf,
    range: Ipv4Net,
    gateway: Ipv4Addr,
    /// Wasm pods' addresses by pod uid, as found on disk and reserved since.
    held: HashMap<String, Ipv4Addr>,
}

/// The exclusive lock host-local also takes; released when dropped.
struct StoreLock(File);

impl StoreLock {
    fn take(dir: &Path) -> Result<Self, IpamError> {
        let path = dir.join(LOCK_FILE);
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(&path))?;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io(&path)(std::io::Error::last_os_error()));
        }
        Ok(StoreLock(f))
    }
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        // SAFETY: unlocking the descriptor taken above.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

impl Ipam {
    /// Opens (creating) `<data_dir>/<network>/` and reads the Wasm pods' reservations in it.
    pub fn open(
        data_dir: &Path,
        network: &str,
        range: Ipv4Net,
        gateway: Ipv4Addr,
    ) -> Result<Self, IpamError> {
        let dir = data_dir.join(network);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let mut ipam = Ipam {
            dir,
            range,
            gateway,
            held: HashMap::new(),
        };
        let _lock = StoreLock::take(&ipam.dir)?;
        for (ip, owner) in ipam.reservations()? {
            if let Some(uid) = owner.strip_prefix(WASM_OWNER_PREFIX) {
                ipam.held.insert(uid.to_string(), ip);
            }
        }
        Ok(ipam)
    }

    /// Every reservation in the store: address and owner id.
    fn reservations(&self) -> Result<Vec<(Ipv4Addr, String)>, IpamError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let Ok(entry) = entry else { continue };
            let Some(ip) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            let Ok(content) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            let owner = content.split(LINE_BREAK).next().unwrap_or("").trim();
            out.push((ip, owner.to_string()));
        }
        Ok(out)
    }

    /// The Wasm pods holding addresses, by uid.
    pub fn held(&self) -> &HashMap<String, Ipv4Addr> {
        &self.held
    }

    /// The address of pod `uid`: the one it already holds, else the next free one after the
    /// last handed out (by either allocator).
    pub fn reserve(&mut self, uid: &str) -> Result<Ipv4Addr, IpamError> {
        if let Some(ip) = self.held.get(uid) {
            return Ok(*ip);
        }
        let _lock = StoreLock::take(&self.dir)?;
        let last = std::fs::read_to_string(self.dir.join(LAST_RESERVED_FILE))
            .ok()
            .and_then(|s| s.trim().parse::<Ipv4Addr>().ok());
        let candidates = self.candidates(last);
        let owner = format!("{WASM_OWNER_PREFIX}{uid}{LINE_BREAK}{WASM_IFNAME}");
        for ip in candidates {
            let path = self.dir.join(ip.to_string());
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    if let Err(e) = f.write_all(owner.as_bytes()) {
                        let _ = std::fs::remove_file(&path);
                        return Err(io(&path)(e));
                    }
                    let last_path = self.dir.join(LAST_RESERVED_FILE);
                    std::fs::write(&last_path, ip.to_string()).map_err(io(&last_path))?;
                    self.held.insert(uid.to_string(), ip);
                    return Ok(ip);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io(&path)(e)),
            }
        }
        Err(IpamError::Exhausted(self.range))
    }

    /// The range's usable addresses (not the network, broadcast or gateway address), starting
    /// after `last`.
    fn candidates(&self, last: Option<Ipv4Addr>) -> Vec<Ipv4Addr> {
        let first = u32::from(self.range.network()) + 1;
        let end = u32::from(self.range.broadcast());
        let all: Vec<Ipv4Addr> = (first..end)
            .map(Ipv4Addr::from)
            .filter(|ip| *ip != self.gateway)
            .collect();
        let start = last
            .and_then(|l| all.iter().position(|ip| *ip == l))
            .map(|i| i + 1)
            .unwrap_or(0);
        let mut ordered = all[start.min(all.len())..].to_vec();
        ordered.extend_from_slice(&all[..start.min(all.len())]);
        ordered
    }

    /// Gives back pod `uid`'s address, if it holds one; returns it.
    pub fn release(&mut self, uid: &str) -> Result<Option<Ipv4Addr>, IpamError> {
        let Some(ip) = self.held.remove(uid) else {
            return Ok(None);
        };
        let _lock = StoreLock::take(&self.dir)?;
        let path = self.dir.join(ip.to_string());
        // Only our own reservation: never a container's that took the address meanwhile.
        let ours = std::fs::read_to_string(&path)
            .map(|c| c.starts_with(&format!("{WASM_OWNER_PREFIX}{uid}")))
            .unwrap_or(false);
        if ours {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&path)(e)),
            }
        }
        Ok(Some(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path) -> Ipam {
        Ipam::open(
            dir,
            "skiff",
            "10.42.0.0/29".parse().unwrap(),
            "10.42.0.1".parse().unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn reserves_round_robin_skipping_gateway_and_taken_addresses() {
        let tmp = tempfile::tempdir().unwrap();
        // A container pod (host-local's format) holds .3.
        let net = tmp.path().join("skiff");
        std::fs::create_dir_all(&net).unwrap();
        std::fs::write(net.join("10.42.0.3"), "abc123\r\neth0").unwrap();
        let mut ipam = open(tmp.path());
        assert_eq!(ipam.reserve("a").unwrap().to_string(), "10.42.0.2");
        assert_eq!(ipam.reserve("b").unwrap().to_string(), "10.42.0.4");
        // The same pod keeps its address.
        assert_eq!(ipam.reserve("a").unwrap().to_string(), "10.42.0.2");
        assert_eq!(
            std::fs::read_to_string(net.join("10.42.0.4")).unwrap(),
            "skiff-wasm-b\r\nwasm"
        );
        assert_eq!(ipam.release("a").unwrap().unwrap().to_string(), "10.42.0.2");
        assert!(!net.join("10.42.0.2").exists());
        // Round robin: .5 next, not the address just freed.
        assert_eq!(ipam.reserve("c").unwrap().to_string(), "10.42.0.5");
        assert_eq!(ipam.reserve("d").unwrap().to_string(), "10.42.0.6");
        // Wraps around to the freed address, then the range is full (.7 is broadcast).
        assert_eq!(ipam.reserve("e").unwrap().to_string(), "10.42.0.2");
        let err = ipam.reserve("f").unwrap_err().to_string();
        assert!(err.contains("10.42.0.0/29"), "{err}");
        assert!(err.contains("--node-cidr-mask-size"), "{err}");
    }

    #[test]
    fn a_reopened_store_finds_wasm_reservations_and_never_frees_a_container_address() {
        let tmp = tempfile::tempdir().unwrap();
        let mut ipam = open(tmp.path());
        let ip = ipam.reserve("uid-1").unwrap();
        drop(ipam);
        let mut again = open(tmp.path());
        assert_eq!(again.held().get("uid-1"), Some(&ip));
        // A container took the file over (should not happen, but never free what is not ours).
        std::fs::write(tmp.path().join("skiff").join(ip.to_string()), "ctr\r\neth0").unwrap();
        assert_eq!(again.release("uid-1").unwrap(), Some(ip));
        assert!(tmp.path().join("skiff").join(ip.to_string()).exists());
        assert_eq!(again.release("unknown").unwrap(), None);
    }
}
