//! Plain `wasi:sockets` from a guest, through Rust's `std::net`: a TCP HTTP/1.0 GET and a
//! DNS query over UDP, each answering with the local address the connection left from.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream, UdpSocket};

use skiff_sdk::http::{Request, Response};

/// `/tcp?addr=HOST:PORT&path=P`: GETs `P` over a TCP connection to `HOST:PORT` (the name
/// resolved through `wasi:sockets/ip-name-lookup`); answers `local=<ip>` and the body.
pub fn tcp(req: &Request) -> Response {
    let Some(addr) = req.query_param("addr") else {
        return Response::text(400, "missing query parameter: addr\n");
    };
    let path = req.query_param("path").unwrap_or_else(|| "/".to_string());
    let host = addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h);
    let exchange = || -> std::io::Result<(std::net::SocketAddr, Vec<u8>)> {
        let mut stream = TcpStream::connect(&addr)?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        Ok((stream.local_addr()?, raw))
    };
    match exchange() {
        Ok((local, raw)) => {
            let text = String::from_utf8_lossy(&raw);
            let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
            Response::text(200, format!("local={}\n{body}", local.ip()))
        }
        Err(err) => Response::text(502, format!("{addr}: {err}\n")),
    }
}

/// `/dns?server=IP:53&name=N`: asks `server` for `N`'s A records in one UDP datagram; answers
/// `local=<ip>` and one address per line.
pub fn dns(req: &Request) -> Response {
    let (Some(server), Some(name)) = (req.query_param("server"), req.query_param("name")) else {
        return Response::text(400, "query parameters server and name are required\n");
    };
    let exchange = || -> std::io::Result<(std::net::SocketAddr, Vec<Ipv4Addr>)> {
        let socket = UdpSocket::bind("0.0.0.0:0")?;
        socket.connect(&server)?;
        socket.send(&query(&name))?;
        let mut reply = [0u8; 1500];
        let n = socket.recv(&mut reply)?;
        Ok((socket.local_addr()?, answers(&reply[..n])))
    };
    match exchange() {
        Ok((local, addrs)) => {
            let mut out = format!("local={}\n", local.ip());
            for a in addrs {
                out.push_str(&format!("{a}\n"));
            }
            Response::text(200, out)
        }
        Err(err) => Response::text(502, format!("{server}: {err}\n")),
    }
}

/// A recursive A query for `name` (RFC 1035 §4.1).
fn query(name: &str) -> Vec<u8> {
    let mut q = vec![0x53, 0x4b, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// The A records of a reply (empty if it is malformed or has none).
fn answers(msg: &[u8]) -> Vec<Ipv4Addr> {
    let count = |i: usize| {
        msg.get(i..i + 2)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
    };
    let mut at = 12;
    for _ in 0..count(4) {
        at = skip_name(msg, at) + 4;
    }
    let mut out = Vec::new();
    for _ in 0..count(6) {
        at = skip_name(msg, at);
        let Some(head) = msg.get(at..at + 10) else {
            break;
        };
        let len = u16::from_be_bytes([head[8], head[9]]) as usize;
        if head[0..2] == [0, 1] && len == 4 {
            if let Some(a) = msg.get(at + 10..at + 14) {
                out.push(Ipv4Addr::new(a[0], a[1], a[2], a[3]));
            }
        }
        at += 10 + len;
    }
    out
}

fn skip_name(msg: &[u8], mut at: usize) -> usize {
    while let Some(&len) = msg.get(at) {
        match len {
            0 => return at + 1,
            l if l & 0xc0 == 0xc0 => return at + 2,
            l => at += 1 + l as usize,
        }
    }
    at
}
