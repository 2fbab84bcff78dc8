//! The netlink operations the pod network needs (rtnetlink): the node's pod bridge, the Wasm
//! pods' addresses on it, and routes to other nodes' pod ranges.

use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteProtocol};
use rtnetlink::{AddressMessageBuilder, LinkBridge, LinkUnspec, RouteMessageBuilder};

/// Routes the agent programs carry this protocol number (`ip route show proto 115`), so a
/// restarted agent can tell its own routes from everything else on the host.
pub const ROUTE_PROTOCOL: u8 = 115;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("netlink: {0}")]
    Netlink(std::io::Error),
    #[error("cannot open a netlink socket: {0}")]
    Connect(std::io::Error),
}

impl LinkError {
    /// Whether the process lacks the privilege (CAP_NET_ADMIN) for the operation.
    pub fn not_permitted(&self) -> bool {
        let e = match self {
            LinkError::Netlink(e) | LinkError::Connect(e) => e,
        };
        matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES))
    }
}

fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(-m.raw_code()),
        _ => None,
    }
}

fn nl(e: rtnetlink::Error) -> LinkError {
    match e {
        rtnetlink::Error::NetlinkError(m) => LinkError::Netlink(m.to_io()),
        other => LinkError::Netlink(std::io::Error::other(other.to_string())),
    }
}

/// One rtnetlink connection (its reader runs on a task owned here).
pub struct Netlink {
    handle: rtnetlink::Handle,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Netlink {
    pub fn connect() -> Result<Self, LinkError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(LinkError::Connect)?;
        Ok(Netlink {
            handle,
            task: tokio::spawn(conn),
        })
    }

    /// The index of link `name`, if it exists.
    pub async fn link_index(&self, name: &str) -> Result<Option<u32>, LinkError> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match links.try_next().await {
            Ok(l) => Ok(l.map(|l| l.header.index)),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(nl(e)),
        }
    }

    /// The bridge `name`, created if missing, up, holding `gateway/prefix`. Returns its index.
    pub async fn ensure_bridge(
        &self,
        name: &str,
        gateway: Ipv4Addr,
        prefix: u8,
    ) -> Result<u32, LinkError> {
        let index = match self.link_index(name).await? {
            Some(i) => i,
            None => {
                match self
                    .handle
                    .link()
                    .add(LinkBridge::new(name).build())
                    .execute()
                    .await
                {
                    Ok(()) => {}
                    // Created meanwhile (by the CNI bridge plugin for a container pod).
                    Err(e) if errno(&e) == Some(libc::EEXIST) => {}
                    Err(e) => return Err(nl(e)),
                }
                self.link_index(name).await?.ok_or_else(|| {
                    LinkError::Netlink(std::io::Error::other(format!(
                        "bridge {name} vanished right after it was created"
                    )))
                })?
            }
        };
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(nl)?;
        if !self.addresses(index).await?.contains(&(gateway, prefix)) {
            self.add_address(index, gateway, prefix).await?;
        }
        Ok(index)
    }

    /// Adds `ip/prefix` to link `index` (already there: fine).
    pub async fn add_address(&self, index: u32, ip: Ipv4Addr, prefix: u8) -> Result<(), LinkError> {
        match self
            .handle
            .address()
            .add(index, IpAddr::V4(ip), prefix)
            .execute()
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
            Err(e) => Err(nl(e)),
        }
    }

    /// Removes `ip/prefix` from link `index` (already gone: fine).
    pub async fn del_address(&self, index: u32, ip: Ipv4Addr, prefix: u8) -> Result<(), LinkError> {
        let msg = AddressMessageBuilder::<Ipv4Addr>::new()
            .index(index)
            .address(ip, prefix)
            .build();
        match self.handle.address().del(msg).execute().await {
            Ok(()) => Ok(()),
            Err(e) if matches!(errno(&e), Some(libc::EADDRNOTAVAIL) | Some(libc::ENODEV)) => Ok(()),
            Err(e) => Err(nl(e)),
        }
    }

    /// The IPv4 addresses on link `index`.
    pub async fn addresses(&self, index: u32) -> Result<Vec<(Ipv4Addr, u8)>, LinkError> {
        let mut out = Vec::new();
        let mut stream = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        while let Some(msg) = stream.try_next().await.map_err(nl)? {
            let prefix = msg.header.prefix_len;
            for attr in &msg.attributes {
                if let AddressAttribute::Local(IpAddr::V4(ip)) = attr {
                    out.push((*ip, prefix));
                }
            }
        }
        Ok(out)
    }

    /// Deletes link `index` (gone already: fine).
    pub async fn delete_link(&self, index: u32) -> Result<(), LinkError> {
        match self.handle.link().del(index).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(()),
            Err(e) => Err(nl(e)),
        }
    }

    /// The routes of the main table carrying [`ROUTE_PROTOCOL`]: destination and gateway.
    pub async fn own_routes(&self) -> Result<Vec<(Ipv4Net, Ipv4Addr)>, LinkError> {
        let mut out = Vec::new();
        let mut stream = self
            .handle
            .route()
            .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
            .execute();
        while let Some(msg) = stream.try_next().await.map_err(nl)? {
            if msg.header.protocol != RouteProtocol::Other(ROUTE_PROTOCOL) {
                continue;
            }
            let mut dst = None;
            let mut gw = None;
            for attr in &msg.attributes {
                match attr {
                    RouteAttribute::Destination(RouteAddress::Inet(a)) => dst = Some(*a),
                    RouteAttribute::Gateway(RouteAddress::Inet(a)) => gw = Some(*a),
                    _ => {}
                }
            }
            if let (Some(d), Some(g)) = (dst, gw) {
                if let Ok(net) = Ipv4Net::new(d, msg.header.destination_prefix_length) {
                    out.push((net, g));
                }
            }
        }
        Ok(out)
    }

    fn route(net: Ipv4Net, gateway: Ipv4Addr) -> rtnetlink::packet_route::route::RouteMessage {
        RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(net.network(), net.prefix_len())
            .gateway(gateway)
            .protocol(RouteProtocol::Other(ROUTE_PROTOCOL))
            .build()
    }

    /// Routes `net` through `gateway` (replacing any route to `net`).
    pub async fn replace_route(&self, net: Ipv4Net, gateway: Ipv4Addr) -> Result<(), LinkError> {
        self.handle
            .route()
            .add(Self::route(net, gateway))
            .replace()
            .execute()
            .await
            .map_err(nl)
    }

    /// Removes the route to `net` through `gateway` (gone already: fine).
    pub async fn del_route(&self, net: Ipv4Net, gateway: Ipv4Addr) -> Result<(), LinkError> {
        match self
            .handle
            .route()
            .del(Self::route(net, gateway))
            .execute()
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(libc::ESRCH) => Ok(()),
            Err(e) => Err(nl(e)),
        }
    }
}
