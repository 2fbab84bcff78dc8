//! Sockets inside a pod sandbox's network namespace. The Wasm containers of a pod that also
//! has Linux containers run in the agent like any Wasm container, but their listeners are
//! created inside the pod's CRI sandbox namespace: they share the pod's IP and `localhost`
//! with the Linux containers. A socket stays in the namespace it was created in, so a
//! short-lived thread enters the namespace (`setns`), creates the sockets and ends; no other
//! work ever runs in that namespace.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::path::Path;

/// Runs `f` on a short-lived thread inside network namespace `netns` (a socket it creates
/// stays in that namespace); `f` may borrow from the caller.
pub fn run_in<T: Send>(netns: &Path, f: impl FnOnce() -> T + Send) -> std::io::Result<T> {
    let ns = File::open(netns)?;
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("skiff-netns".into())
            .spawn_scoped(scope, move || {
                // SAFETY: setns on a descriptor this thread holds; only this thread changes
                // namespace, and it ends when `f` returns.
                if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(f())
            })?
            .join()
            .map_err(|_| {
                std::io::Error::other("the thread entering the pod's network namespace panicked")
            })?
    })
}

fn in_netns<T: Send>(
    netns: &Path,
    f: impl FnOnce() -> std::io::Result<T> + Send,
) -> std::io::Result<T> {
    run_in(netns, f)?
}

/// Non-blocking TCP listeners on `addrs`, created inside network namespace `netns`.
pub fn bind_tcp(netns: &Path, addrs: Vec<SocketAddr>) -> std::io::Result<Vec<TcpListener>> {
    in_netns(netns, move || {
        addrs
            .iter()
            .map(|a| {
                let l = TcpListener::bind(a)?;
                l.set_nonblocking(true)?;
                Ok(l)
            })
            .collect()
    })
}

/// An unconnected non-blocking TCP socket inside network namespace `netns`, for an outgoing
/// connection from the pod (`tokio::net::TcpSocket::from_std_stream` takes it).
pub fn tcp_socket(netns: &Path, ipv6: bool) -> std::io::Result<std::net::TcpStream> {
    in_netns(netns, move || {
        let domain = if ipv6 {
            socket2::Domain::IPV6
        } else {
            socket2::Domain::IPV4
        };
        let s = socket2::Socket::new(domain, socket2::Type::STREAM, None)?;
        s.set_nonblocking(true)?;
        Ok(s.into())
    })
}
