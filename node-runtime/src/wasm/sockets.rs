//! `wasi:sockets` for pod guests. wasmtime-wasi implements the sockets; this module puts a
//! pod's network around them by shadowing a few of its linker entries:
//!
//! - A pure-Wasm pod has an address on the node bridge and no namespace of its own: a bind to
//!   the unspecified address (a listener, or a UDP client's implicit bind) binds the pod
//!   address instead, a TCP connect from an unbound socket binds it first (so the peer sees
//!   the pod's address, as for a container), and binding any other node address is refused.
//!   Loopback stays the node's.
//! - A pod that also has Linux containers: sockets are created inside its CRI sandbox's
//!   namespace ([`crate::network::netns`]), so they share the pod's address and `localhost`.
//! - `wasi:sockets/ip-name-lookup` answers cluster names from the node's DNS zone with the
//!   pod's search list (as the pod's resolver would), and other names through the node's
//!   resolver — the same answers [`super::egress`] gives outgoing HTTP.
//!
//! Without a pod network (the agent lacks `CAP_NET_ADMIN`, or `--no-pod-network`) guests use
//! the node's network, as a `hostNetwork` pod does.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use wasmtime::component::{Linker, Resource, ResourceType};
use wasmtime::StoreContextMut;
use wasmtime_wasi::p2::bindings::sockets::network::{
    ErrorCode, IpAddress, IpAddressFamily, IpSocketAddress,
};
use wasmtime_wasi::p2::bindings::sockets::tcp::HostTcpSocket;
use wasmtime_wasi::p2::bindings::sockets::udp::HostUdpSocket;
use wasmtime_wasi::p2::bindings::sockets::{tcp_create_socket, udp_create_socket};
use wasmtime_wasi::p2::{Network, Pollable, SocketError, TcpSocket, UdpSocket};
use wasmtime_wasi::sockets::{SocketAddrUse, WasiSocketsView};

use super::egress::{resolve_name, Egress};
use super::host::Host;

/// The `wasi:sockets` version wasmtime-wasi defines: shadowing needs the exact instance name
/// (the unit test below fails if an upgrade changes it).
const WASI_SOCKETS: &str = "0.2.12";

/// How long a guest's name lookup may take through the node's resolver before it fails with
/// `temporary-resolver-failure` (cluster names answer from memory at once).
pub const DEFAULT_LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Adds the pod-aware `wasi:sockets` entries over wasmtime-wasi's (which must be in `linker`).
pub(crate) fn add_to_linker(linker: &mut Linker<Host>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let result = define(linker);
    linker.allow_shadowing(false);
    result
}

fn define(linker: &mut Linker<Host>) -> wasmtime::Result<()> {
    let mut tcp = linker.instance(&format!("wasi:sockets/tcp@{WASI_SOCKETS}"))?;
    tcp.func_wrap_async(
        "[method]tcp-socket.start-bind",
        |mut store: StoreContextMut<'_, Host>,
         (this, network, local): (Resource<TcpSocket>, Resource<Network>, IpSocketAddress)| {
            Box::new(async move {
                let local = match store.data().pod_bind_address(local) {
                    Ok(a) => a,
                    Err(code) => return Ok((Err(code),)),
                };
                let mut view = store.data_mut().sockets();
                code(HostTcpSocket::start_bind(&mut view, this, network, local).await)
            })
        },
    )?;
    tcp.func_wrap_async(
        "[method]tcp-socket.start-connect",
        |mut store: StoreContextMut<'_, Host>,
         (this, network, remote): (Resource<TcpSocket>, Resource<Network>, IpSocketAddress)| {
            Box::new(async move {
                let source = store.data().pod_source_for(&remote);
                let mut view = store.data_mut().sockets();
                if let Some(source) = source {
                    let unbound = HostTcpSocket::local_address(&mut view, borrow(&this)).is_err();
                    if unbound {
                        let bound = HostTcpSocket::start_bind(
                            &mut view,
                            borrow(&this),
                            borrow(&network),
                            SocketAddr::new(source, 0).into(),
                        )
                        .await
                        .and_then(|()| HostTcpSocket::finish_bind(&mut view, borrow(&this)));
                        if let Err(e) = bound {
                            return code(Err(e));
                        }
                    }
                }
                code(HostTcpSocket::start_connect(
                    &mut view, this, network, remote,
                ))
            })
        },
    )?;
    let mut udp = linker.instance(&format!("wasi:sockets/udp@{WASI_SOCKETS}"))?;
    udp.func_wrap_async(
        "[method]udp-socket.start-bind",
        |mut store: StoreContextMut<'_, Host>,
         (this, network, local): (Resource<UdpSocket>, Resource<Network>, IpSocketAddress)| {
            Box::new(async move {
                let local = match store.data().pod_bind_address(local) {
                    Ok(a) => a,
                    Err(code) => return Ok((Err(code),)),
                };
                let mut view = store.data_mut().sockets();
                code(HostUdpSocket::start_bind(&mut view, this, network, local).await)
            })
        },
    )?;
    let mut create = linker.instance(&format!("wasi:sockets/tcp-create-socket@{WASI_SOCKETS}"))?;
    create.func_wrap(
        "create-tcp-socket",
        |mut store: StoreContextMut<'_, Host>, (family,): (IpAddressFamily,)| {
            let netns = store.data().egress().and_then(|e| e.netns.clone());
            let mut view = store.data_mut().sockets();
            let created = match netns {
                None => tcp_create_socket::Host::create_tcp_socket(&mut view, family),
                Some(ns) => crate::network::netns::run_in(&ns, || {
                    tcp_create_socket::Host::create_tcp_socket(&mut view, family)
                })
                .map_err(|e| sandbox_error(&ns, e))?,
            };
            code(created)
        },
    )?;
    let mut create = linker.instance(&format!("wasi:sockets/udp-create-socket@{WASI_SOCKETS}"))?;
    create.func_wrap_async(
        "create-udp-socket",
        |mut store: StoreContextMut<'_, Host>, (family,): (IpAddressFamily,)| {
            Box::new(async move {
                let netns = store.data().egress().and_then(|e| e.netns.clone());
                let mut view = store.data_mut().sockets();
                let created = match netns {
                    None => udp_create_socket::Host::create_udp_socket(&mut view, family).await,
                    Some(ns) => {
                        // The socket is registered with this runtime from the namespace's
                        // thread; the wait for it to be writable is the reactor's (other
                        // workers drive it), bounded by DEFAULT_LOOKUP_TIMEOUT.
                        let rt = tokio::runtime::Handle::current();
                        crate::network::netns::run_in(&ns, || {
                            let _in_runtime = rt.enter();
                            futures::executor::block_on(tokio::time::timeout(
                                DEFAULT_LOOKUP_TIMEOUT,
                                udp_create_socket::Host::create_udp_socket(&mut view, family),
                            ))
                        })
                        .map_err(|e| sandbox_error(&ns, e))?
                        .unwrap_or_else(|_| Err(ErrorCode::Timeout.into()))
                    }
                };
                code(created)
            })
        },
    )?;

    let mut lookup = linker.instance(&format!("wasi:sockets/ip-name-lookup@{WASI_SOCKETS}"))?;
    lookup.resource(
        "resolve-address-stream",
        ResourceType::host::<NameLookup>(),
        |mut store, rep| {
            store
                .data_mut()
                .sockets()
                .table
                .delete(Resource::<NameLookup>::new_own(rep))?;
            Ok(())
        },
    )?;
    lookup.func_wrap(
        "resolve-addresses",
        |mut store: StoreContextMut<'_, Host>, (network, name): (Resource<Network>, String)| {
            let egress = store.data().egress().cloned();
            let view = store.data_mut().sockets();
            // The network resource is the capability to look names up.
            view.table.get(&network)?;
            let state = start_lookup(egress, name);
            if let Lookup::Done(Err(code)) = &state {
                return Ok((Err(*code),));
            }
            Ok((Ok(view.table.push(NameLookup(state))?),))
        },
    )?;
    lookup.func_wrap(
        "[method]resolve-address-stream.resolve-next-address",
        |mut store: StoreContextMut<'_, Host>, (this,): (Resource<NameLookup>,)| {
            let view = store.data_mut().sockets();
            let stream = view.table.get_mut(&this)?;
            Ok((stream.next(),))
        },
    )?;
    lookup.func_wrap(
        "[method]resolve-address-stream.subscribe",
        |mut store: StoreContextMut<'_, Host>, (this,): (Resource<NameLookup>,)| {
            let view = store.data_mut().sockets();
            Ok((wasmtime_wasi::p2::subscribe(view.table, this)?,))
        },
    )?;
    Ok(())
}

/// A second borrow handle of the same resource (the host calls take handles by value).
fn borrow<T: 'static>(r: &Resource<T>) -> Resource<T> {
    Resource::new_borrow(r.rep())
}

/// A wasmtime-wasi result as the guest sees it: error codes go to the guest, anything else
/// traps the instance.
fn code<T>(r: Result<T, SocketError>) -> wasmtime::Result<(Result<T, ErrorCode>,)> {
    match r {
        Ok(v) => Ok((Ok(v),)),
        Err(e) => e.downcast().map(|code| (Err(code),)),
    }
}

fn sandbox_error(ns: &std::path::Path, e: std::io::Error) -> wasmtime::Error {
    wasmtime::Error::msg(format!(
        "cannot create a socket in the pod's network namespace {}: {e}",
        ns.display()
    ))
}

impl Host {
    /// Where a bind to `local` really goes: the unspecified IPv4 address becomes the pod's
    /// address; another non-loopback address is refused (it is the node's, not the pod's).
    fn pod_bind_address(&self, local: IpSocketAddress) -> Result<IpSocketAddress, ErrorCode> {
        let Some(pod) = self.egress().and_then(|e| e.source) else {
            return Ok(local);
        };
        let addr = SocketAddr::from(local);
        match addr.ip() {
            ip if ip == pod || ip.is_loopback() => Ok(addr.into()),
            IpAddr::V4(v4) if v4.is_unspecified() => Ok(SocketAddr::new(pod, addr.port()).into()),
            _ => Err(ErrorCode::AccessDenied),
        }
    }

    /// The pod's address, when a connection to `remote` should leave from it (every
    /// destination but loopback; the node masquerades what leaves the cluster network).
    fn pod_source_for(&self, remote: &IpSocketAddress) -> Option<IpAddr> {
        let pod = self.egress()?.source?;
        let remote = SocketAddr::from(*remote);
        (!remote.ip().is_loopback() && remote.is_ipv4() == pod.is_ipv4()).then_some(pod)
    }
}

/// Whether a guest may use `addr` for `use_` (wasmtime-wasi asks before every bind, connect
/// and send): a pure-Wasm pod may bind only its own address and loopback.
pub(crate) fn allow_address(
    egress: Option<&Egress>,
    addr: SocketAddr,
    use_: SocketAddrUse,
) -> bool {
    let Some(pod) = egress.and_then(|e| e.source) else {
        return true;
    };
    match use_ {
        SocketAddrUse::TcpBind | SocketAddrUse::UdpBind => {
            addr.ip() == pod || addr.ip().is_loopback()
        }
        _ => true,
    }
}

/// A guest's name lookup in progress or done.
pub(crate) struct NameLookup(Lookup);

enum Lookup {
    Done(Result<std::vec::IntoIter<IpAddr>, ErrorCode>),
    Pending(tokio::task::JoinHandle<Result<Vec<IpAddr>, ErrorCode>>),
}

impl NameLookup {
    fn next(&mut self) -> Result<Option<IpAddress>, ErrorCode> {
        if let Lookup::Pending(task) = &mut self.0 {
            if !task.is_finished() {
                return Err(ErrorCode::WouldBlock);
            }
            self.0 = Lookup::Done(finished(task.now_or_never()));
        }
        match &mut self.0 {
            Lookup::Done(Ok(addrs)) => Ok(addrs.next().map(IpAddress::from)),
            Lookup::Done(Err(code)) => Err(*code),
            Lookup::Pending(_) => Err(ErrorCode::WouldBlock),
        }
    }
}

type LookupJoin = Result<Result<Vec<IpAddr>, ErrorCode>, tokio::task::JoinError>;

fn finished(r: Option<LookupJoin>) -> Result<std::vec::IntoIter<IpAddr>, ErrorCode> {
    match r {
        Some(Ok(found)) => found.map(Vec::into_iter),
        _ => Err(ErrorCode::TemporaryResolverFailure),
    }
}

impl Drop for NameLookup {
    fn drop(&mut self) {
        if let Lookup::Pending(task) = &self.0 {
            task.abort();
        }
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for NameLookup {
    async fn ready(&mut self) {
        if let Lookup::Pending(task) = &mut self.0 {
            let r = task.await;
            self.0 = Lookup::Done(finished(Some(r)));
        }
    }
}

fn start_lookup(egress: Option<Arc<Egress>>, name: String) -> Lookup {
    let host = match url::Host::parse(&name) {
        Ok(url::Host::Ipv4(ip)) => return Lookup::Done(Ok(vec![IpAddr::V4(ip)].into_iter())),
        Ok(url::Host::Ipv6(ip)) => return Lookup::Done(Ok(vec![IpAddr::V6(ip)].into_iter())),
        Ok(url::Host::Domain(d)) => d,
        // `url` wants brackets around IPv6 addresses; a bare one is fine too.
        Err(_) => match name.parse::<std::net::Ipv6Addr>() {
            Ok(ip) => return Lookup::Done(Ok(vec![IpAddr::V6(ip)].into_iter())),
            Err(_) => return Lookup::Done(Err(ErrorCode::InvalidArgument)),
        },
    };
    Lookup::Pending(tokio::spawn(async move {
        match tokio::time::timeout(
            DEFAULT_LOOKUP_TIMEOUT,
            resolve_name(egress.as_deref(), &host),
        )
        .await
        {
            Err(_) => Err(ErrorCode::TemporaryResolverFailure),
            Ok(Ok(found)) if found.is_empty() => Err(ErrorCode::NameUnresolvable),
            Ok(Ok(found)) => Ok(found),
            Ok(Err(_)) => Err(ErrorCode::NameUnresolvable),
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every entry this module defines exists in wasmtime-wasi's linker under the same name
    /// (defining it again without shadowing fails): otherwise ours would sit beside theirs,
    /// unused.
    #[test]
    fn shadows_wasmtime_wasi_entries() {
        let engine = wasmtime::Engine::default();
        let mut linker = Linker::<Host>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
        let entries = [
            ("tcp", "[method]tcp-socket.start-bind"),
            ("tcp", "[method]tcp-socket.start-connect"),
            ("udp", "[method]udp-socket.start-bind"),
            ("tcp-create-socket", "create-tcp-socket"),
            ("udp-create-socket", "create-udp-socket"),
            ("ip-name-lookup", "resolve-address-stream"),
            ("ip-name-lookup", "resolve-addresses"),
            (
                "ip-name-lookup",
                "[method]resolve-address-stream.resolve-next-address",
            ),
            ("ip-name-lookup", "[method]resolve-address-stream.subscribe"),
        ];
        for (interface, name) in entries {
            let mut inst = linker
                .instance(&format!("wasi:sockets/{interface}@{WASI_SOCKETS}"))
                .unwrap();
            let err = inst.func_wrap(name, |_, (): ()| Ok(())).unwrap_err();
            assert!(
                format!("{err:#}").contains("defined twice"),
                "{name}: {err:#}"
            );
        }
        // With shadowing every definition goes through.
        add_to_linker(&mut linker).unwrap();
    }
}
