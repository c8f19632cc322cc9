//! Request bodies: `Content-Encoding` and the legacy store body encoding.
//!
//! Every decoder writes into a buffer that may grow to `limit` bytes and no further: a body
//! that would decode to more fails with [`DecodeError::TooLarge`] once the limit is crossed,
//! so a few kilobytes of gzip cannot make the server allocate gigabytes.

use std::borrow::Cow;
use std::io::Read;

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

/// Decodes a store endpoint body: JSON as is, or the legacy form of old raven SDKs, base64
/// of JSON or of zlib-compressed JSON.
pub fn decode_store_body(body: &[u8], limit: usize) -> Result<Cow<'_, [u8]>> {
    let trimmed = body.trim_ascii_start();
    let trimmed = trimmed.strip_prefix(b"\xef\xbb\xbf").unwrap_or(trimmed);
    if trimmed.first().is_none_or(|b| *b == b'{' || *b == b'[') {
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
