//! SPDY/3.1 frames, as kubectl's port-forward speaks them (moby/spdystream on its side): the
//! frame layout of SPDY draft 3.1 section 2.2, and header blocks compressed as one zlib stream
//! per direction and session, primed with the SPDY dictionary, each block ending in a sync
//! flush. [`Decoder`] reads frames (it owns the inflating side), [`Encoder`] writes them (the
//! deflating side); a session has one of each.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::dictionary::DICTIONARY;

/// The protocol version in every control frame.
pub const VERSION: u16 = 3;
/// FLAG_FIN: the sender sends nothing more on the stream.
pub const FLAG_FIN: u8 = 0x01;
/// The largest payload a frame's 24-bit length can give.
pub const MAX_FRAME_LEN: usize = (1 << 24) - 1;
/// The largest uncompressed header block accepted (kubectl's are under 100 bytes).
const MAX_HEADER_BLOCK: usize = 64 * 1024;
/// The most name/value pairs accepted in one header block.
const MAX_HEADER_PAIRS: usize = 256;

/// RST_STREAM status codes (section 2.4.2).
pub mod status {
    pub const PROTOCOL_ERROR: u32 = 1;
    pub const REFUSED_STREAM: u32 = 3;
    pub const CANCEL: u32 = 5;
    pub const INTERNAL_ERROR: u32 = 6;
    pub const STREAM_IN_USE: u32 = 8;
}

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const SETTINGS: u16 = 4;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;

#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    #[error("unsupported SPDY version {0} (only 3 is spoken)")]
    Version(u16),
    #[error("{kind} frame of {len} bytes is malformed")]
    Malformed { kind: &'static str, len: usize },
    #[error("malformed header block: {0}")]
    HeaderBlock(&'static str),
    #[error("header block larger than {MAX_HEADER_BLOCK} bytes")]
    HeaderBlockTooLarge,
    #[error("header compression: {0}")]
    Zlib(String),
    #[error("frame payload of {0} bytes is larger than a frame can carry")]
    TooLarge(usize),
}

/// A header block's name/value pairs, names lowercase; several values of one name are joined
/// by NUL, as on the wire.
pub type Headers = Vec<(String, String)>;

/// One SPDY frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        associated_to: u32,
        priority: u8,
        flags: u8,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    /// (flags, id, value) entries.
    Settings {
        flags: u8,
        entries: Vec<(u8, u32, u32)>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        flags: u8,
        data: Bytes,
    },
    /// A control frame of a type this codec does not know; the spec says to ignore it.
    Unknown {
        frame_type: u16,
    },
}

/// The value of header `name` in `headers`.
pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Reads frames, inflating header blocks with the session's zlib stream.
pub struct Decoder {
    inflate: Decompress,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            inflate: Decompress::new(true),
        }
    }
}

impl Decoder {
    /// Takes one whole frame off the front of `buf`, or `None` until one has arrived.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, SpdyError> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]) as usize;
        if buf.len() < 8 + len {
            buf.reserve(8 + len - buf.len());
            return Ok(None);
        }
        let head = buf.split_to(8);
        let mut body = buf.split_to(len).freeze();
        let flags = head[4];
        if head[0] & 0x80 == 0 {
            let stream_id = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
            return Ok(Some(Frame::Data {
                stream_id,
                flags,
                data: body,
            }));
        }
        let version = u16::from_be_bytes([head[0], head[1]]) & 0x7fff;
        if version != VERSION {
            return Err(SpdyError::Version(version));
        }
        let frame_type = u16::from_be_bytes([head[2], head[3]]);
        let malformed = |kind| SpdyError::Malformed { kind, len };
        let frame = match frame_type {
            SYN_STREAM => {
                if len < 10 {
                    return Err(malformed("SYN_STREAM"));
                }
                let stream_id = body.get_u32() & 0x7fff_ffff;
                let associated_to = body.get_u32() & 0x7fff_ffff;
                let priority = body.get_u8() >> 5;
                let _slot = body.get_u8();
                Frame::SynStream {
                    stream_id,
                    associated_to,
                    priority,
                    flags,
                    headers: self.header_block(&body)?,
                }
            }
            SYN_REPLY | HEADERS => {
                if len < 4 {
                    return Err(malformed("SYN_REPLY/HEADERS"));
                }
                let stream_id = body.get_u32() & 0x7fff_ffff;
                let headers = self.header_block(&body)?;
                if frame_type == SYN_REPLY {
                    Frame::SynReply {
                        stream_id,
                        flags,
                        headers,
                    }
                } else {
                    Frame::Headers {
                        stream_id,
                        flags,
                        headers,
                    }
                }
            }
            RST_STREAM => {
                if len != 8 {
                    return Err(malformed("RST_STREAM"));
                }
                Frame::RstStream {
                    stream_id: body.get_u32() & 0x7fff_ffff,
                    status: body.get_u32(),
                }
            }
            SETTINGS => {
                if len < 4 {
                    return Err(malformed("SETTINGS"));
                }
                let n = body.get_u32() as usize;
                if body.remaining() != n.saturating_mul(8) {
                    return Err(malformed("SETTINGS"));
                }
                let entries = (0..n)
                    .map(|_| {
                        let word = body.get_u32();
                        ((word >> 24) as u8, word & 0x00ff_ffff, body.get_u32())
                    })
                    .collect();
                Frame::Settings { flags, entries }
            }
            PING => {
                if len != 4 {
                    return Err(malformed("PING"));
                }
                Frame::Ping { id: body.get_u32() }
            }
            GOAWAY => {
                // SPDY/3 adds a status code to SPDY/2's 4-byte GOAWAY; take either.
                if len != 8 && len != 4 {
                    return Err(malformed("GOAWAY"));
                }
                Frame::GoAway {
                    last_good_stream_id: body.get_u32() & 0x7fff_ffff,
                    status: if body.has_remaining() {
                        body.get_u32()
                    } else {
                        0
                    },
                }
            }
            WINDOW_UPDATE => {
                if len != 8 {
                    return Err(malformed("WINDOW_UPDATE"));
                }
                Frame::WindowUpdate {
                    stream_id: body.get_u32() & 0x7fff_ffff,
                    delta: body.get_u32() & 0x7fff_ffff,
                }
            }
            other => Frame::Unknown { frame_type: other },
        };
        Ok(Some(frame))
    }

    /// Inflates one header block (the session's zlib stream continues across blocks) and
    /// parses its name/value pairs.
    fn header_block(&mut self, compressed: &[u8]) -> Result<Headers, SpdyError> {
        let raw = inflate(&mut self.inflate, compressed)?;
        parse_header_block(&raw)
    }
}

/// Writes frames, deflating header blocks with the session's zlib stream.
pub struct Encoder {
    deflate: Compress,
    primed: bool,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder {
            deflate: Compress::new(Compression::default(), true),
            primed: false,
        }
    }
}

impl Encoder {
    /// Appends `frame` to `dst`.
    pub fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), SpdyError> {
        let (frame_type, flags, body) = match frame {
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                if data.len() > MAX_FRAME_LEN {
                    return Err(SpdyError::TooLarge(data.len()));
                }
                dst.reserve(8 + data.len());
                dst.put_u32(stream_id & 0x7fff_ffff);
                dst.put_u8(*flags);
                put_u24(dst, data.len());
                dst.put_slice(data);
                return Ok(());
            }
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                flags,
                headers,
            } => {
                let mut b = BytesMut::new();
                b.put_u32(stream_id & 0x7fff_ffff);
                b.put_u32(associated_to & 0x7fff_ffff);
                b.put_u8((priority & 0x07) << 5);
                b.put_u8(0);
                b.put_slice(&self.header_block(headers)?);
                (SYN_STREAM, *flags, b)
            }
            Frame::SynReply {
                stream_id,
                flags,
                headers,
            }
            | Frame::Headers {
                stream_id,
                flags,
                headers,
            } => {
                let mut b = BytesMut::new();
                b.put_u32(stream_id & 0x7fff_ffff);
                b.put_slice(&self.header_block(headers)?);
                let t = if matches!(frame, Frame::SynReply { .. }) {
                    SYN_REPLY
                } else {
                    HEADERS
                };
                (t, *flags, b)
            }
            Frame::RstStream { stream_id, status } => {
                let mut b = BytesMut::with_capacity(8);
                b.put_u32(stream_id & 0x7fff_ffff);
                b.put_u32(*status);
                (RST_STREAM, 0, b)
            }
            Frame::Settings { flags, entries } => {
                let mut b = BytesMut::with_capacity(4 + entries.len() * 8);
                b.put_u32(entries.len() as u32);
                for (f, id, value) in entries {
                    b.put_u32((u32::from(*f) << 24) | (id & 0x00ff_ffff));
                    b.put_u32(*value);
                }
                (SETTINGS, *flags, b)
            }
            Frame::Ping { id } => {
                let mut b = BytesMut::with_capacity(4);
                b.put_u32(*id);
                (PING, 0, b)
            }
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                let mut b = BytesMut::with_capacity(8);
                b.put_u32(last_good_stream_id & 0x7fff_ffff);
                b.put_u32(*status);
                (GOAWAY, 0, b)
            }
            Frame::WindowUpdate { stream_id, delta } => {
                let mut b = BytesMut::with_capacity(8);
                b.put_u32(stream_id & 0x7fff_ffff);
                b.put_u32(delta & 0x7fff_ffff);
                (WINDOW_UPDATE, 0, b)
            }
            Frame::Unknown { frame_type } => (*frame_type, 0, BytesMut::new()),
        };
        if body.len() > MAX_FRAME_LEN {
            return Err(SpdyError::TooLarge(body.len()));
        }
        dst.reserve(8 + body.len());
        dst.put_u16(0x8000 | VERSION);
        dst.put_u16(frame_type);
        dst.put_u8(flags);
        put_u24(dst, body.len());
        dst.put_slice(&body);
        Ok(())
    }

    /// Serializes and deflates one header block, ending with a sync flush so the peer can
    /// read it whole from this frame alone.
    fn header_block(&mut self, headers: &Headers) -> Result<Vec<u8>, SpdyError> {
        if !self.primed {
            self.deflate
                .set_dictionary(DICTIONARY)
                .map_err(|e| SpdyError::Zlib(e.to_string()))?;
            self.primed = true;
        }
        let mut raw = BytesMut::new();
        raw.put_u32(headers.len() as u32);
        for (name, value) in headers {
            raw.put_u32(name.len() as u32);
            raw.put_slice(name.to_ascii_lowercase().as_bytes());
            raw.put_u32(value.len() as u32);
            raw.put_slice(value.as_bytes());
        }
        deflate(&mut self.deflate, &raw)
    }
}

fn put_u24(dst: &mut BytesMut, n: usize) {
    dst.put_slice(&(n as u32).to_be_bytes()[1..]);
}

/// Deflates `input` and sync-flushes.
fn deflate(c: &mut Compress, input: &[u8]) -> Result<Vec<u8>, SpdyError> {
    let mut out = Vec::with_capacity(input.len() + 64);
    let start = c.total_in();
    loop {
        let consumed = (c.total_in() - start) as usize;
        c.compress_vec(&input[consumed..], &mut out, FlushCompress::Sync)
            .map_err(|e| SpdyError::Zlib(e.to_string()))?;
        // The flush is complete once all input is taken and the output was not filled.
        if (c.total_in() - start) as usize == input.len() && out.len() < out.capacity() {
            return Ok(out);
        }
        out.reserve(out.capacity().max(256));
    }
}

/// Inflates one sync-flushed block of the session's zlib stream, supplying the dictionary
/// when the stream asks for it (its first block).
fn inflate(d: &mut Decompress, input: &[u8]) -> Result<Vec<u8>, SpdyError> {
    let mut out = Vec::with_capacity(input.len() * 4 + 64);
    let start = d.total_in();
    loop {
        let consumed = (d.total_in() - start) as usize;
        if consumed == input.len() && out.len() < out.capacity() {
            return Ok(out);
        }
        if out.len() > MAX_HEADER_BLOCK {
            return Err(SpdyError::HeaderBlockTooLarge);
        }
        if out.len() == out.capacity() {
            out.reserve(out.capacity().max(256));
        }
        let before = (d.total_in(), d.total_out());
        match d.decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync) {
            Ok(Status::StreamEnd) => return Err(SpdyError::Zlib("the header stream ended".into())),
            Ok(_) => {
                if (d.total_in(), d.total_out()) == before && out.len() < out.capacity() {
                    return Err(SpdyError::Zlib("truncated header block".into()));
                }
            }
            Err(e) if e.needs_dictionary().is_some() => {
                d.set_dictionary(DICTIONARY)
                    .map_err(|e| SpdyError::Zlib(e.to_string()))?;
            }
            Err(e) => return Err(SpdyError::Zlib(e.to_string())),
        }
    }
}

/// Parses an uncompressed header block: a 32-bit pair count, then for each pair a 32-bit
/// length and the name, a 32-bit length and the value.
fn parse_header_block(mut raw: &[u8]) -> Result<Headers, SpdyError> {
    fn take<'a>(raw: &mut &'a [u8]) -> Result<&'a [u8], SpdyError> {
        if raw.remaining() < 4 {
            return Err(SpdyError::HeaderBlock("truncated length"));
        }
        let n = raw.get_u32() as usize;
        if raw.remaining() < n {
            return Err(SpdyError::HeaderBlock("length past the end of the block"));
        }
        let (s, rest) = raw.split_at(n);
        *raw = rest;
        Ok(s)
    }
    if raw.remaining() < 4 {
        return Err(SpdyError::HeaderBlock("no pair count"));
    }
    let n = raw.get_u32() as usize;
    if n > MAX_HEADER_PAIRS {
        return Err(SpdyError::HeaderBlock("too many pairs"));
    }
    let mut headers = Vec::with_capacity(n);
    for _ in 0..n {
        let name = take(&mut raw)?;
        let value = take(&mut raw)?;
        if name.is_empty() {
            return Err(SpdyError::HeaderBlock("empty header name"));
        }
        let name = std::str::from_utf8(name)
            .map_err(|_| SpdyError::HeaderBlock("header name is not UTF-8"))?;
        let value = std::str::from_utf8(value)
            .map_err(|_| SpdyError::HeaderBlock("header value is not UTF-8"))?;
        headers.push((name.to_ascii_lowercase(), value.to_string()));
    }
    Ok(headers)
}

#[cfg(test)]
#[path = "spdy_tests.rs"]
mod tests;
