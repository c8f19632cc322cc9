//! Request bodies: `Content-Encoding` and the legacy store body encoding.
//!
//! Every decoder writes into a buffer that may grow to `limit` bytes and no further: a body
//! that would decode to more fails with [`DecodeError::TooLarge`] once the limit is crossed,
//! so a few kilobytes of gzip cannot make the server allocate gigabytes.

use std::borrow::Cow;
use std::io::{BufRead, Read};

use base64::Engine as _;

use crate::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unsupported Content-Encoding {0:?}: use identity, gzip, deflate, br or zstd")]
    UnsupportedEncoding(String),
    #[error("body is not valid {encoding} data: {source}")]
    Corrupt {
        encoding: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("body decodes to more than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the first line of the body (the envelope header) is longer than {limit} bytes")]
    LineTooLong { limit: usize },
    #[error("store body is neither JSON nor base64: {0}")]
    NotBase64(#[source] base64::DecodeError),
}

pub type Result<T, E = DecodeError> = std::result::Result<T, E>;

impl DecodeError {
    /// True if a size limit was exceeded (HTTP 413).
    pub fn is_too_large(&self) -> bool {
        matches!(self, Self::TooLarge { .. })
    }

    pub fn kind(&self) -> ErrorKind {
        if self.is_too_large() {
            ErrorKind::TooLarge
        } else {
            ErrorKind::BadRequest
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
    Deflate,
    Brotli,
    Zstd,
}

impl Encoding {
    fn parse(token: &str) -> Result<Self> {
        let token = token.trim();
        Ok(match token.to_ascii_lowercase().as_str() {
            "" | "identity" => Self::Identity,
            "gzip" | "x-gzip" => Self::Gzip,
            "deflate" => Self::Deflate,
            "br" => Self::Brotli,
            "zstd" => Self::Zstd,
            _ => return Err(DecodeError::UnsupportedEncoding(token.to_owned())),
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Gzip => "gzip",
            Self::Deflate => "deflate",
            Self::Brotli => "brotli",
            Self::Zstd => "zstd",
        }
    }
}

/// Decodes `body` by its `Content-Encoding` header value.
///
/// Encodings listed as `a, b` were applied in that order, so they are undone from the last.
/// Fails with [`DecodeError::TooLarge`] when the output of any step would exceed `limit`.
pub fn decode_body<'a>(
    content_encoding: Option<&str>,
    body: &'a [u8],
    limit: usize,
) -> Result<Cow<'a, [u8]>> {
    let mut steps = Vec::new();
    for token in content_encoding.unwrap_or("").split(',') {
        let encoding = Encoding::parse(token)?;
        if encoding != Encoding::Identity {
            steps.push(encoding);
        }
    }
    let mut data = Cow::Borrowed(body);
    for encoding in steps.into_iter().rev() {
        data = Cow::Owned(decode_one(encoding, &data, limit)?);
    }
    if data.len() > limit {
        return Err(DecodeError::TooLarge { limit });
    }
    Ok(data)
}

fn decode_one(encoding: Encoding, input: &[u8], limit: usize) -> Result<Vec<u8>> {
    match encoding {
        Encoding::Identity => Ok(input.to_vec()),
        Encoding::Gzip => read_limited(flate2::read::MultiGzDecoder::new(input), encoding, limit),
        Encoding::Deflate if looks_like_zlib(input) => {
            read_limited(flate2::read::ZlibDecoder::new(input), encoding, limit)
        }
        Encoding::Deflate => {
            read_limited(flate2::read::DeflateDecoder::new(input), encoding, limit)
        }
        Encoding::Brotli => read_limited(brotlic::DecompressorReader::new(input), encoding, limit),
        Encoding::Zstd => {
            let decoder = zstd::stream::read::Decoder::with_buffer(input).map_err(|source| {
                DecodeError::Corrupt {
                    encoding: encoding.name(),
                    source,
                }
            })?;
            read_limited(decoder, encoding, limit)
        }
    }
}

/// Decodes `body` only as far as the end of its first line (without the newline), for the
/// envelope header, reading at most `max_line` decoded bytes. The decoders stream: a body that
/// decodes to gigabytes costs no more than `max_line` bytes of output here.
///
/// Fails with [`DecodeError::LineTooLong`] when no newline comes within `max_line` bytes;
/// a body without any newline is its own first line.
pub fn decode_first_line(
    content_encoding: Option<&str>,
    body: &[u8],
    max_line: usize,
) -> Result<Vec<u8>> {
    let (mut line, read) = read_first_line(content_encoding, body, max_line)?;
    read?;
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    Ok(line)
}

/// Like [`decode_first_line`] on the first bytes of a body still being received: `Ok(None)`
/// while `prefix` does not yet decode to a complete first line (including when the decoder
/// runs out of input), so a caller can try again with more.
pub fn complete_first_line(
    content_encoding: Option<&str>,
    prefix: &[u8],
    max_line: usize,
) -> Result<Option<Vec<u8>>> {
    let (mut line, _) = read_first_line(content_encoding, prefix, max_line)?;
    if line.last() == Some(&b'\n') {
        line.pop();
        Ok(Some(line))
    } else {
        Ok(None)
    }
}

/// Decodes up to and including the first newline, at most `max_line + 1` bytes. Returns what
/// was decoded (ending in `\n` when a newline was found) and how reading ended.
fn read_first_line(
    content_encoding: Option<&str>,
    body: &[u8],
    max_line: usize,
) -> Result<(Vec<u8>, Result<()>)> {
    let mut steps = Vec::new();
    for token in content_encoding.unwrap_or("").split(',') {
        let encoding = Encoding::parse(token)?;
        if encoding != Encoding::Identity {
            steps.push(encoding);
        }
    }
    let mut reader: Box<dyn BufRead + '_> = Box::new(body);
    let mut last = Encoding::Identity;
    for encoding in steps.into_iter().rev() {
        match stream_decoder(encoding, reader) {
            Ok(decoder) => reader = Box::new(std::io::BufReader::new(decoder)),
            Err(err) => return Ok((Vec::new(), Err(err))),
        }
        last = encoding;
    }
    let mut line = Vec::with_capacity(1024.min(max_line + 1));
    let read = reader
        .take(max_line as u64 + 1)
        .read_until(b'\n', &mut line)
        .map(|_| ())
        .map_err(|source| DecodeError::Corrupt {
            encoding: last.name(),
            source,
        });
    if line.last() != Some(&b'\n') && line.len() > max_line {
        return Err(DecodeError::LineTooLong { limit: max_line });
    }
    Ok((line, read))
}

/// A streaming decoder of one encoding over `input`.
fn stream_decoder<'a>(
    encoding: Encoding,
    mut input: Box<dyn BufRead + 'a>,
) -> Result<Box<dyn Read + 'a>> {
    let corrupt = |source| DecodeError::Corrupt {
        encoding: encoding.name(),
        source,
    };
    Ok(match encoding {
        Encoding::Identity => Box::new(input),
        Encoding::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        Encoding::Deflate => {
            let head = input.fill_buf().map_err(corrupt)?;
            if looks_like_zlib(head) {
                Box::new(flate2::bufread::ZlibDecoder::new(input))
            } else {
                Box::new(flate2::bufread::DeflateDecoder::new(input))
            }
        }
        Encoding::Brotli => Box::new(brotlic::DecompressorReader::new(input)),
        Encoding::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(input).map_err(corrupt)?)
        }
    })
}

/// A zlib stream starts with a CMF/FLG pair: method 8 and a header checksum divisible by 31.
fn looks_like_zlib(input: &[u8]) -> bool {
    match input {
        [cmf, flg, ..] => cmf & 0x0f == 8 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0,
        _ => false,
    }
}

/// First allocation for decoded output: an SDK envelope decodes to 10-50 KB, so most fit
/// without the buffer growing (and being copied) several times.
const INITIAL_OUTPUT: usize = 64 * 1024;

/// Reads `reader` to the end into a buffer that never grows past `limit + 1` bytes.
fn read_limited(reader: impl Read, encoding: Encoding, limit: usize) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(INITIAL_OUTPUT.min(limit + 1));
    let read = reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|source| DecodeError::Corrupt {
            encoding: encoding.name(),
            source,
        })?;
    if read > limit {
        return Err(DecodeError::TooLarge { limit });
    }
    Ok(out)
}

/// True if `text` is one JSON scalar (`null`, `true`, `false`, a number or a string).
fn is_json_scalar(text: &[u8]) -> bool {
    let text = text.trim_ascii();
    if text.is_empty() || text.len() > 4096 {
        return false;
    }
    let scalar_start = matches!(text[0], b'n' | b't' | b'f' | b'"' | b'-' | b'0'..=b'9');
    scalar_start && serde_json::from_slice::<serde::de::IgnoredAny>(text).is_ok()
}

/// Decodes a store endpoint body: JSON as is, or the legacy form of old raven SDKs, base64
/// of JSON or of zlib-compressed JSON.
pub fn decode_store_body(body: &[u8], limit: usize) -> Result<Cow<'_, [u8]>> {
    let trimmed = body.trim_ascii_start();
    let trimmed = trimmed.strip_prefix(b"\xef\xbb\xbf").unwrap_or(trimmed);
    if trimmed.first().is_none_or(|b| *b == b'{' || *b == b'[') || is_json_scalar(trimmed) {
        // a JSON value that is no object (`null`, `"text"`, `42`) is left for normalization
        // to name; as base64 it would decode to garbage reported as "not valid deflate data"
        return Ok(Cow::Borrowed(body));
    }
    let text: Vec<u8> = trimmed
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&text)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(&text))
        .map_err(DecodeError::NotBase64)?;
    if decoded.trim_ascii_start().first() == Some(&b'{') {
        if decoded.len() > limit {
            return Err(DecodeError::TooLarge { limit });
        }
        return Ok(Cow::Owned(decoded));
    }
    decode_one(Encoding::Deflate, &decoded, limit).map(Cow::Owned)
}
