//! SPDY/3.1 framing, as much of it as `kubectl port-forward` needs: the
//! frame layout, and header blocks compressed with zlib and the protocol's
//! preset dictionary (one compression context per direction for the whole
//! session, flushed after every block). No flow control: client-go's
//! SPDY library sends no WINDOW_UPDATE and ignores them, so neither do we.
//!
//! Layout (draft-mbelshe-httpbis-spdy-00, §2.2): a control frame is
//! `1 | version(15) | type(16) | flags(8) | length(24) | data`; a data
//! frame `0 | stream-id(31) | flags(8) | length(24) | data`.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The protocol version in every control frame.
const VERSION: u16 = 3;

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const SETTINGS: u16 = 4;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;

/// FLAG_FIN: the sender's last frame on the stream.
const FLAG_FIN: u8 = 0x01;

/// The largest header block we inflate (a decompression bomb stops here).
const MAX_HEADER_BLOCK: usize = 64 * 1024;

/// RST_STREAM status: PROTOCOL_ERROR.
pub(crate) const PROTOCOL_ERROR: u32 = 1;
/// RST_STREAM status: REFUSED_STREAM.
pub(crate) const REFUSED_STREAM: u32 = 7;

/// Header names and values; a name may repeat.
pub(crate) type Headers = Vec<(String, String)>;

/// One frame, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// Stream data; `fin` ends the sender's half.
    Data {
        stream: u32,
        fin: bool,
        data: Vec<u8>,
    },
    /// A new stream from the peer.
    SynStream {
        stream: u32,
        fin: bool,
        headers: Headers,
    },
    /// The answer to a SYN_STREAM.
    SynReply {
        stream: u32,
        fin: bool,
        headers: Headers,
    },
    /// A stream aborted.
    RstStream { stream: u32, status: u32 },
    /// A liveness check; answered with the same id.
    Ping(u32),
    /// The session ends.
    GoAway { last_good: u32, status: u32 },
    /// Frames the port-forward server has no use for (SETTINGS,
    /// WINDOW_UPDATE = 9, HEADERS, unknown types), by type.
    Ignored(u16),
}

/// What was wrong with the bytes received.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SpdyError {
    /// A control frame of a version other than 3.
    #[error("unsupported SPDY version {0}")]
    Version(u16),
    /// A frame shorter than its type requires.
    #[error("SPDY frame of type {0} is too short")]
    Short(u16),
    /// The header block did not inflate or parse.
    #[error("bad SPDY header block: {0}")]
    HeaderBlock(String),
}

/// The SPDY/3 header compression dictionary (§2.6.10.1): header names and
/// common values, each preceded by its length, then a run of status codes,
/// reason phrases, dates and content types.
pub(crate) fn dictionary() -> Vec<u8> {
    const WORDS: [&str; 65] = [
        "options",
        "head",
        "post",
        "put",
        "delete",
        "trace",
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "age",
        "allow",
        "authorization",
        "cache-control",
        "connection",
        "content-base",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expect",
        "expires",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "referer",
        "retry-after",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "method",
        "get",
        "status",
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
    ];
    const TAIL: &str = concat!(
        "100101201202205206300302303304305306307",
        "402405406407408409410411412413414415416417",
        "502504505",
        "203 Non-Authoritative Information",
        "204 No Content",
        "301 Moved Permanently",
        "400 Bad Request",
        "401 Unauthorized",
        "403 Forbidden",
        "404 Not Found",
        "500 Internal Server Error",
        "501 Not Implemented",
        "503 Service Unavailable",
        "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec ",
        "00:00:00 ",
        "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT",
        "chunked,text/html,image/png,image/jpg,image/gif,",
        "application/xml,application/xhtml+xml,text/plain,text/javascript,",
        "publicprivatemax-age=gzip,deflate,sdch",
        "charset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
    );
    let mut out = Vec::with_capacity(1423);
    for word in WORDS {
        out.extend_from_slice(&(word.len() as u32).to_be_bytes());
        out.extend_from_slice(word.as_bytes());
    }
    out.extend_from_slice(TAIL.as_bytes());
    out
}

/// One side of a session: decodes what the peer sends, encodes what we send.
pub(crate) struct Codec {
    dictionary: Vec<u8>,
    inflate: Decompress,
    deflate: Compress,
    /// Received bytes not yet a whole frame.
    pending: Vec<u8>,
}

impl Default for Codec {
    fn default() -> Self {
        Self::new()
    }
}

impl Codec {
    pub(crate) fn new() -> Codec {
        let dictionary = dictionary();
        let mut deflate = Compress::new(Compression::default(), true);
        // Cannot fail on a fresh stream: zlib refuses a dictionary only
        // once compression has started.
        let _ = deflate.set_dictionary(&dictionary);
        Codec {
            dictionary,
            inflate: Decompress::new(true),
            deflate,
            pending: Vec::new(),
        }
    }

    /// Adds received bytes (they may hold part of a frame, or several).
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// The next whole frame received, if there is one.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Frame>, SpdyError> {
        if self.pending.len() < 8 {
            return Ok(None);
        }
        let length = u32::from_be_bytes([0, self.pending[5], self.pending[6], self.pending[7]]);
        let end = 8 + length as usize;
        if self.pending.len() < end {
            return Ok(None);
        }
        let frame: Vec<u8> = self.pending.drain(..end).collect();
        let flags = frame[4];
        let body = &frame[8..];
        if frame[0] & 0x80 == 0 {
            let stream = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
            return Ok(Some(Frame::Data {
                stream,
                fin: flags & FLAG_FIN != 0,
                data: body.to_vec(),
            }));
        }
        let version = u16::from_be_bytes([frame[0] & 0x7f, frame[1]]);
        if version != VERSION {
            return Err(SpdyError::Version(version));
        }
        let kind = u16::from_be_bytes([frame[2], frame[3]]);
        let word = |at: usize| -> Result<u32, SpdyError> {
            body.get(at..at + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or(SpdyError::Short(kind))
        };
        let fin = flags & FLAG_FIN != 0;
        Ok(Some(match kind {
            SYN_STREAM => {
                let stream = word(0)? & 0x7fff_ffff;
                // Associated stream (4), priority and slot (2): unused here.
                let block = body.get(10..).ok_or(SpdyError::Short(kind))?;
                Frame::SynStream {
                    stream,
                    fin,
                    headers: self.inflate_headers(block)?,
                }
            }
            SYN_REPLY => {
                let stream = word(0)? & 0x7fff_ffff;
                let block = body.get(4..).ok_or(SpdyError::Short(kind))?;
                Frame::SynReply {
                    stream,
                    fin,
                    headers: self.inflate_headers(block)?,
                }
            }
            HEADERS => {
                // Inflated even though unused: the compression context is
                // shared by every block of the session.
                let block = body.get(4..).ok_or(SpdyError::Short(kind))?;
                self.inflate_headers(block)?;
                Frame::Ignored(kind)
            }
            RST_STREAM => Frame::RstStream {
                stream: word(0)? & 0x7fff_ffff,
                status: word(4)?,
            },
            PING => Frame::Ping(word(0)?),
            GOAWAY => Frame::GoAway {
                last_good: word(0)? & 0x7fff_ffff,
                status: word(4).unwrap_or(0),
            },
            other => Frame::Ignored(other),
        }))
    }

    /// Encodes a frame to send. Header blocks go through this session's
    /// compressor, so frames must be sent in the order they are encoded.
    pub(crate) fn encode(&mut self, frame: &Frame) -> Vec<u8> {
        match frame {
            Frame::Data { stream, fin, data } => {
                let mut out = Vec::with_capacity(8 + data.len());
                out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
                push_flags_length(&mut out, u8::from(*fin), data.len());
                out.extend_from_slice(data);
                out
            }
            Frame::SynStream {
                stream,
                fin,
                headers,
            } => {
                let mut body = (stream & 0x7fff_ffff).to_be_bytes().to_vec();
                body.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
                body.extend(self.deflate_headers(headers));
                control(SYN_STREAM, u8::from(*fin), &body)
            }
            Frame::SynReply {
                stream,
                fin,
                headers,
            } => {
                let mut body = (stream & 0x7fff_ffff).to_be_bytes().to_vec();
                body.extend(self.deflate_headers(headers));
                control(SYN_REPLY, u8::from(*fin), &body)
            }
            Frame::RstStream { stream, status } => {
                let mut body = (stream & 0x7fff_ffff).to_be_bytes().to_vec();
                body.extend_from_slice(&status.to_be_bytes());
                control(RST_STREAM, 0, &body)
            }
            Frame::Ping(id) => control(PING, 0, &id.to_be_bytes()),
            Frame::GoAway { last_good, status } => {
                let mut body = (last_good & 0x7fff_ffff).to_be_bytes().to_vec();
                body.extend_from_slice(&status.to_be_bytes());
                control(GOAWAY, 0, &body)
            }
            // Nothing we send: an empty SETTINGS stands in harmlessly.
            Frame::Ignored(_) => control(SETTINGS, 0, &0u32.to_be_bytes()),
        }
    }

    fn inflate_headers(&mut self, block: &[u8]) -> Result<Headers, SpdyError> {
        let bad = |m: String| SpdyError::HeaderBlock(m);
        let mut out = Vec::with_capacity(256);
        let mut input = block;
        loop {
            if out.len() == out.capacity() {
                if out.len() >= MAX_HEADER_BLOCK {
                    return Err(bad("larger than 64 KiB".into()));
                }
                out.reserve(out.len().max(256));
            }
            let before = self.inflate.total_in();
            let result = self
                .inflate
                .decompress_vec(input, &mut out, FlushDecompress::Sync);
            let used = usize::try_from(self.inflate.total_in() - before).unwrap_or(input.len());
            input = &input[used.min(input.len())..];
            match result {
                Ok(Status::StreamEnd) => return Err(bad("the zlib stream ended".into())),
                Ok(_) => {
                    if input.is_empty() && out.len() < out.capacity() {
                        break;
                    }
                }
                Err(err) if err.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(&self.dictionary)
                        .map_err(|e| bad(e.to_string()))?;
                }
                Err(err) => return Err(bad(err.to_string())),
            }
        }
        parse_header_block(&out).ok_or_else(|| bad("truncated name/value pairs".into()))
    }

    fn deflate_headers(&mut self, headers: &Headers) -> Vec<u8> {
        let plain = header_block(headers);
        let mut out = Vec::with_capacity(plain.len() + 64);
        let mut input = plain.as_slice();
        loop {
            out.reserve(256);
            let before = self.deflate.total_in();
            // Our own bounded input into a growing buffer: cannot fail.
            let _ = self
                .deflate
                .compress_vec(input, &mut out, FlushCompress::Sync);
            let used = usize::try_from(self.deflate.total_in() - before).unwrap_or(input.len());
            input = &input[used.min(input.len())..];
            // A sync flush is complete once output stops short of the space.
            if input.is_empty() && out.len() < out.capacity() {
                return out;
            }
        }
    }
}

fn push_flags_length(out: &mut Vec<u8>, flags: u8, length: usize) {
    let length = (length as u32).min(0x00ff_ffff);
    out.push(flags);
    out.extend_from_slice(&length.to_be_bytes()[1..]);
}

fn control(kind: u16, flags: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + body.len());
    out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    push_flags_length(&mut out, flags, body.len());
    out.extend_from_slice(body);
    out
}

/// The uncompressed name/value block: a count, then length-prefixed names
/// and values (several values of one name joined by NUL).
fn header_block(headers: &Headers) -> Vec<u8> {
    let mut names: Vec<(&str, Vec<&str>)> = Vec::new();
    for (name, value) in headers {
        match names.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            Some((_, values)) => values.push(value),
            None => names.push((name, vec![value])),
        }
    }
    let mut out = (names.len() as u32).to_be_bytes().to_vec();
    for (name, values) in names {
        let name = name.to_ascii_lowercase();
        out.extend_from_slice(&(name.len() as u32).to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        let value = values.join("\0");
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

fn parse_header_block(block: &[u8]) -> Option<Headers> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let piece = block.get(at..at.checked_add(n)?)?;
        at += n;
        Some(piece)
    };
    let word = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let count = word(take(4)?);
    let mut headers = Vec::new();
    for _ in 0..count {
        let len = word(take(4)?);
        let name = String::from_utf8_lossy(take(len)?).to_ascii_lowercase();
        let len = word(take(4)?);
        let value = String::from_utf8_lossy(take(len)?).into_owned();
        for v in value.split('\0') {
            headers.push((name.clone(), v.to_owned()));
        }
    }
    Some(headers)
}

/// The first value of header `name` (names are lower case on the wire).
pub(crate) fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_dictionary_is_the_protocols() {
        let dict = dictionary();
        assert_eq!(dict.len(), 1423);
        // zlib names a preset dictionary by its Adler-32 in the stream
        // header; a peer with another dictionary refuses ours.
        let mut c = Compress::new(Compression::default(), true);
        assert_eq!(c.set_dictionary(&dict).unwrap(), 0xe3c6_a7c2);
    }

    /// A SYN_STREAM as client-go's SPDY library sends it (header block
    /// compressed by C zlib with the SPDY dictionary, sync-flushed): stream
    /// 1, `port: 8080`, `requestid: 0`, `streamtype: error`; then a second
    /// one in the same compression context (`streamtype: data`, stream 3).
    #[test]
    fn decodes_header_blocks_compressed_by_another_zlib() {
        let mut wire = hex(
            "800300010000003d0000000100000000000078f9e3c6a7c202253a48f95b044eea16\
             061606409ab308125f99a074cc68004e892545a989b9d0c2863515141500000000ffff",
        );
        wire.extend(hex(
            "800300010000001600000003000000000000225333a8a44a04000000ffff",
        ));
        let mut codec = Codec::new();
        codec.feed(&wire);
        assert_eq!(
            codec.next_frame().unwrap(),
            Some(Frame::SynStream {
                stream: 1,
                fin: false,
                headers: headers(&[
                    ("port", "8080"),
                    ("requestid", "0"),
                    ("streamtype", "error")
                ]),
            })
        );
        assert_eq!(
            codec.next_frame().unwrap(),
            Some(Frame::SynStream {
                stream: 3,
                fin: false,
                headers: headers(&[("port", "8080"), ("requestid", "0"), ("streamtype", "data")]),
            })
        );
        assert_eq!(codec.next_frame().unwrap(), None);
    }

    #[test]
    fn header_blocks_round_trip_across_frames_in_one_context() {
        let mut server = Codec::new();
        let mut client = Codec::new();
        let sent = [
            Frame::SynStream {
                stream: 1,
                fin: false,
                headers: headers(&[
                    ("streamType", "error"),
                    ("port", "8080"),
                    ("requestID", "0"),
                ]),
            },
            Frame::SynStream {
                stream: 3,
                fin: false,
                headers: headers(&[("streamtype", "data"), ("port", "8080"), ("requestid", "0")]),
            },
            Frame::Data {
                stream: 3,
                fin: true,
                data: b"GET / HTTP/1.0\r\n\r\n".to_vec(),
            },
            Frame::Ping(1),
            Frame::RstStream {
                stream: 5,
                status: PROTOCOL_ERROR,
            },
            Frame::GoAway {
                last_good: 3,
                status: 0,
            },
        ];
        let mut wire = Vec::new();
        for frame in &sent {
            wire.extend(client.encode(frame));
        }
        // Fed a byte at a time: frames come out whole, in order.
        let mut got = Vec::new();
        for byte in wire {
            server.feed(&[byte]);
            while let Some(frame) = server.next_frame().unwrap() {
                got.push(frame);
            }
        }
        let mut expected = sent.to_vec();
        // Names arrive lower case, as on the wire.
        if let Frame::SynStream { headers, .. } = &mut expected[0] {
            *headers = headers_lower(headers);
        }
        assert_eq!(got, expected);
    }

    fn headers_lower(h: &Headers) -> Headers {
        h.iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .collect()
    }

    #[test]
    fn repeated_names_travel_as_nul_joined_values() {
        let block = header_block(&headers(&[("a", "1"), ("b", "2"), ("A", "3")]));
        let parsed = parse_header_block(&block).unwrap();
        assert_eq!(parsed, headers(&[("a", "1"), ("a", "3"), ("b", "2")]));
        assert_eq!(header(&parsed, "A"), Some("1"));
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        // A control frame of SPDY/2.
        let mut codec = Codec::new();
        codec.feed(&[0x80, 0x02, 0, 1, 0, 0, 0, 0]);
        assert!(matches!(codec.next_frame(), Err(SpdyError::Version(2))));
        // A SYN_STREAM whose header block is not zlib.
        let mut codec = Codec::new();
        codec.feed(&control(
            SYN_STREAM,
            0,
            &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3],
        ));
        assert!(matches!(codec.next_frame(), Err(SpdyError::HeaderBlock(_))));
        // A PING without its id.
        let mut codec = Codec::new();
        codec.feed(&control(PING, 0, &[]));
        assert!(matches!(codec.next_frame(), Err(SpdyError::Short(PING))));
        // Name/value lengths pointing past the block.
        assert_eq!(parse_header_block(&[0, 0, 0, 1, 255, 255, 255, 255]), None);
    }

    #[test]
    fn a_header_block_bomb_is_refused() {
        let mut client = Codec::new();
        let big = "x".repeat(100 * 1024);
        let wire = client.encode(&Frame::SynStream {
            stream: 1,
            fin: false,
            headers: headers(&[("big", &big)]),
        });
        assert!(wire.len() < 2048, "compresses well: {}", wire.len());
        let mut server = Codec::new();
        server.feed(&wire);
        assert!(matches!(
            server.next_frame(),
            Err(SpdyError::HeaderBlock(_))
        ));
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
