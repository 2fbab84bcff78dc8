use super::*;

fn h(pairs: &[(&str, &str)]) -> Headers {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn every_kind() -> Vec<Frame> {
    vec![
        Frame::SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 0,
            flags: 0,
            headers: h(&[
                ("streamtype", "error"),
                ("port", "8080"),
                ("requestid", "0"),
            ]),
        },
        Frame::SynReply {
            stream_id: 1,
            flags: 0,
            headers: Vec::new(),
        },
        Frame::SynStream {
            stream_id: 3,
            associated_to: 1,
            priority: 7,
            flags: FLAG_FIN,
            headers: h(&[("streamtype", "data"), ("port", "8080"), ("requestid", "0")]),
        },
        Frame::Headers {
            stream_id: 3,
            flags: 0,
            headers: h(&[("x", "a\0b")]),
        },
        Frame::Data {
            stream_id: 3,
            flags: 0,
            data: Bytes::from_static(b"GET / HTTP/1.1\r\n\r\n"),
        },
        Frame::Data {
            stream_id: 1,
            flags: FLAG_FIN,
            data: Bytes::new(),
        },
        Frame::RstStream {
            stream_id: 3,
            status: status::CANCEL,
        },
        Frame::Settings {
            flags: 1,
            entries: vec![(0, 7, 65536), (1, 4, 100)],
        },
        Frame::Ping { id: 1 },
        Frame::WindowUpdate {
            stream_id: 3,
            delta: 1 << 20,
        },
        Frame::GoAway {
            last_good_stream_id: 3,
            status: 0,
        },
    ]
}

#[test]
fn every_frame_round_trips_through_one_session() {
    let (mut enc, mut dec) = (Encoder::default(), Decoder::default());
    let frames = every_kind();
    let mut wire = BytesMut::new();
    for f in &frames {
        enc.encode(f, &mut wire).unwrap();
    }
    let mut back = Vec::new();
    while let Some(f) = dec.decode(&mut wire).unwrap() {
        back.push(f);
    }
    assert_eq!(back, frames);
    assert!(wire.is_empty());
}

#[test]
fn frames_arriving_byte_by_byte_decode_once_whole() {
    let mut enc = Encoder::default();
    let mut wire = BytesMut::new();
    for f in &every_kind() {
        enc.encode(f, &mut wire).unwrap();
    }
    let mut dec = Decoder::default();
    let mut buf = BytesMut::new();
    let mut back = Vec::new();
    for b in wire.iter() {
        buf.put_u8(*b);
        while let Some(f) = dec.decode(&mut buf).unwrap() {
            back.push(f);
        }
    }
    assert_eq!(back, every_kind());
}

#[test]
fn control_frame_layout_matches_the_spec() {
    let mut wire = BytesMut::new();
    Encoder::default()
        .encode(
            &Frame::RstStream {
                stream_id: 5,
                status: status::REFUSED_STREAM,
            },
            &mut wire,
        )
        .unwrap();
    assert_eq!(
        &wire[..],
        &[0x80, 0x03, 0x00, 0x03, 0x00, 0x00, 0x00, 0x08, 0, 0, 0, 5, 0, 0, 0, 3]
    );
    let mut wire = BytesMut::new();
    Encoder::default()
        .encode(
            &Frame::Data {
                stream_id: 3,
                flags: FLAG_FIN,
                data: Bytes::from_static(b"hi"),
            },
            &mut wire,
        )
        .unwrap();
    assert_eq!(&wire[..], &[0, 0, 0, 3, 1, 0, 0, 2, b'h', b'i']);
}

#[test]
fn dictionary_is_spdy3s() {
    assert_eq!(DICTIONARY.len(), 1423);
    assert!(DICTIONARY.starts_with(b"\x00\x00\x00\x07options"));
    assert!(DICTIONARY.ends_with(b",*,enq=0."));
}

#[test]
fn header_blocks_are_zlib_with_the_spdy_dictionary() {
    let mut wire = BytesMut::new();
    Encoder::default()
        .encode(
            &Frame::SynReply {
                stream_id: 1,
                flags: 0,
                headers: Vec::new(),
            },
            &mut wire,
        )
        .unwrap();
    // After the 8-byte frame header and the stream id: a zlib header with FDICT set,
    // then the dictionary's id (its Adler-32).
    let z = &wire[12..];
    assert_eq!(z[0] & 0x0f, 8, "deflate");
    assert_eq!(((u16::from(z[0]) << 8) | u16::from(z[1])) % 31, 0);
    assert_ne!(z[1] & 0x20, 0, "FDICT");
    assert_eq!(&z[2..6], &[0xe3, 0xc6, 0xa7, 0xc2]);
    // Sync flush: the block ends with an empty stored block.
    assert!(wire.ends_with(&[0x00, 0x00, 0xff, 0xff]));
}

/// Two SYN_STREAMs as kubectl sends them for one forwarded connection (error stream, then
/// data stream), compressed by C zlib (level 9, the SPDY dictionary, sync flush per block):
/// another implementation's output.
#[test]
fn decodes_syn_streams_compressed_by_c_zlib() {
    let vector = hex(concat!(
        "800300010000003d0000000100000000000078f9e3c6a7c202253a48f95b044eea16061606409ab3",
        "08125f99a074cc68004e892545a989b9d0c2863515141500000000ffff8003000100000016000000",
        "03000000000000225333a8a44a04000000ffff"
    ));
    let mut buf = BytesMut::from(&vector[..]);
    let mut dec = Decoder::default();
    let first = dec.decode(&mut buf).unwrap().unwrap();
    let second = dec.decode(&mut buf).unwrap().unwrap();
    assert!(buf.is_empty());
    let Frame::SynStream {
        stream_id: 1,
        headers,
        ..
    } = first
    else {
        panic!("{first:?}")
    };
    assert_eq!(header(&headers, "streamtype"), Some("error"));
    assert_eq!(header(&headers, "port"), Some("8080"));
    assert_eq!(header(&headers, "requestid"), Some("0"));
    let Frame::SynStream {
        stream_id: 3,
        headers,
        ..
    } = second
    else {
        panic!("{second:?}")
    };
    assert_eq!(header(&headers, "streamtype"), Some("data"));
}

#[test]
fn rejects_what_it_cannot_read() {
    let mut dec = Decoder::default();
    // SPDY/2 control frame.
    let mut b = BytesMut::from(&[0x80, 0x02, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1][..]);
    assert!(matches!(dec.decode(&mut b), Err(SpdyError::Version(2))));
    // A PING of the wrong length.
    let mut b = BytesMut::from(&[0x80, 0x03, 0x00, 0x06, 0, 0, 0, 2, 0, 1][..]);
    assert!(matches!(
        dec.decode(&mut b),
        Err(SpdyError::Malformed { .. })
    ));
    // A SYN_STREAM whose header block is not zlib.
    let mut b = BytesMut::new();
    b.put_slice(&[0x80, 0x03, 0x00, 0x01, 0, 0, 0, 14]);
    b.put_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]);
    assert!(matches!(
        Decoder::default().decode(&mut b),
        Err(SpdyError::Zlib(_))
    ));
    // A header block whose lengths run past its end.
    assert!(parse_header_block(&[0, 0, 0, 1, 0, 0, 0, 9, b'a']).is_err());
    assert!(parse_header_block(&[0, 0, 0x10, 0]).is_err());
    // Unknown control frames are skipped, not fatal.
    let mut b = BytesMut::from(&[0x80, 0x03, 0x00, 0x0a, 0, 0, 0, 1, 7][..]);
    assert_eq!(
        dec.decode(&mut b).unwrap(),
        Some(Frame::Unknown { frame_type: 10 })
    );
}

/// What kubectl 1.32 (client-go over moby/spdystream, Go's zlib) sent for two forwarded
/// connections, captured at the agent: the first connection's error stream (closed at once),
/// its data stream with a request and FIN, then the second connection's two streams.
#[test]
fn decodes_what_kubectl_sends() {
    let vector = hex(concat!(
        "800300010000003e0000000100000000000078f9e3c6a7c202253a060606ce2248fc6482d22da301",
        "38e59514a526e6420b17d65450d0430aea22709eb030b03000000000ffff00000001010000008003",
        "00010000001800000003000000000000225233a8644a44d70b000000ffff00000003000000504745",
        "54202f6120485454502f312e310d0a486f73743a203132372e302e302e313a31383138350d0a5573",
        "65722d4167656e743a206375726c2f372e38382e310d0a4163636570743a202a2f2a0d0a0d0a0000",
        "00030100000080030001000000180000000500000000000082ea25d21a542b0c01000000ffff0000",
        "000501000000800300010000001600000007000000000000c26ab121711603000000ffff",
    ));
    let mut buf = BytesMut::from(&vector[..]);
    let mut dec = Decoder::default();
    let mut frames = Vec::new();
    while let Some(f) = dec.decode(&mut buf).unwrap() {
        frames.push(f);
    }
    assert!(buf.is_empty());
    let syn = |f: &Frame| match f {
        Frame::SynStream {
            stream_id, headers, ..
        } => (
            *stream_id,
            header(headers, "streamtype").unwrap_or("").to_string(),
            header(headers, "port").unwrap_or("").to_string(),
            header(headers, "requestid").unwrap_or("").to_string(),
        ),
        other => panic!("not a SYN_STREAM: {other:?}"),
    };
    let s = |id, t: &str, r: &str| (id, t.to_string(), "8080".to_string(), r.to_string());
    assert_eq!(frames.len(), 8, "{frames:?}");
    assert_eq!(syn(&frames[0]), s(1, "error", "0"));
    assert_eq!(frames[1], fin_frame(1));
    assert_eq!(syn(&frames[2]), s(3, "data", "0"));
    let Frame::Data {
        stream_id: 3,
        flags: 0,
        data,
    } = &frames[3]
    else {
        panic!("{:?}", frames[3])
    };
    assert!(data.starts_with(b"GET /a HTTP/1.1\r\n"));
    assert_eq!(frames[4], fin_frame(3));
    assert_eq!(syn(&frames[5]), s(5, "error", "1"));
    assert_eq!(frames[6], fin_frame(5));
    assert_eq!(syn(&frames[7]), s(7, "data", "1"));
}

fn fin_frame(stream_id: u32) -> Frame {
    Frame::Data {
        stream_id,
        flags: FLAG_FIN,
        data: Bytes::new(),
    }
}
