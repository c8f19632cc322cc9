//! Content encodings, the compression bomb limit, and legacy store bodies.

use std::io::Write;

use base64::Engine as _;
use faultline_protocol::ErrorKind;
use faultline_protocol::decode::{DecodeError, decode_body, decode_store_body};

const BODY: &[u8] =
    br#"{"message":"hello","level":"error","extra":{"pad":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}}"#;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn raw_deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
    w.write_all(data).unwrap();
    drop(w);
    out
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

#[test]
fn identity_borrows_the_body() {
    for encoding in [None, Some(""), Some("identity"), Some(" Identity ")] {
        let out = decode_body(encoding, BODY, 1024).unwrap();
        assert!(matches!(out, std::borrow::Cow::Borrowed(_)), "{encoding:?}");
        assert_eq!(&*out, BODY);
    }
}

#[test]
fn each_encoding_decodes() {
    let cases: [(&str, Vec<u8>); 6] = [
        ("gzip", gzip(BODY)),
        ("x-gzip", gzip(BODY)),
        ("deflate", zlib(BODY)),
        ("deflate", raw_deflate(BODY)),
        ("br", brotli(BODY)),
        ("zstd", zstd(BODY)),
    ];
    for (encoding, encoded) in cases {
        assert_ne!(encoded, BODY);
        let out = decode_body(Some(encoding), &encoded, 1024).unwrap();
        assert_eq!(&*out, BODY, "{encoding}");
    }
}

#[test]
fn chains_are_undone_last_first() {
    // "gzip, br": gzip was applied first, then brotli
    let encoded = brotli(&gzip(BODY));
    let out = decode_body(Some("gzip, br"), &encoded, 1024).unwrap();
    assert_eq!(&*out, BODY);
    assert!(decode_body(Some("br, gzip"), &encoded, 1024).is_err());
}

#[test]
fn unknown_encoding_and_corrupt_data_are_bad_requests() {
    let err = decode_body(Some("compress"), BODY, 1024).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsupported Content-Encoding \"compress\": use identity, gzip, deflate, br or zstd"
    );
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    let err = decode_body(Some("gzip"), b"definitely not gzip", 1024).unwrap_err();
    assert!(
        err.to_string().starts_with("body is not valid gzip data"),
        "{err}"
    );
    assert!(!err.is_too_large());
}

/// Peak resident memory of this process (Linux), in bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[test]
fn bomb_stops_at_the_limit_without_allocating_the_output() {
    // one gzip member of 16 MiB of zeros is about 16 KiB; 16 members decode to 256 MiB
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1024 * 1024];
    for _ in 0..16 {
        e.write_all(&zeros).unwrap();
    }
    let member = e.finish().unwrap();
    let bomb = member.repeat(16);
    assert!(bomb.len() < 512 * 1024, "{}", bomb.len());
    let before = peak_rss();
    for encoding in ["gzip", "gzip, identity"] {
        let err = decode_body(Some(encoding), &bomb, 1024 * 1024).unwrap_err();
        assert!(
            matches!(err, DecodeError::TooLarge { limit: 1048576 }),
            "{err}"
        );
        assert!(err.is_too_large());
        assert_eq!(err.kind(), ErrorKind::TooLarge);
        assert_eq!(
            err.to_string(),
            "body decodes to more than the limit of 1048576 bytes"
        );
    }
    if let (Some(before), Some(after)) = (before, peak_rss()) {
        // decoding all of it would have raised the peak by about 256 MiB
        let grown = after.saturating_sub(before);
        assert!(
            grown < 64 * 1024 * 1024,
            "peak memory grew by {grown} bytes"
        );
    }
    for (encoding, bomb) in [("br", brotli(&zeros)), ("zstd", zstd(&zeros))] {
        let err = decode_body(Some(encoding), &bomb, 1000).unwrap_err();
        assert!(err.is_too_large(), "{encoding}: {err}");
    }
}

#[test]
fn output_exactly_at_the_limit_is_accepted() {
    let encoded = gzip(BODY);
    let out = decode_body(Some("gzip"), &encoded, BODY.len()).unwrap();
    assert_eq!(out.len(), BODY.len());
    assert!(
        decode_body(Some("gzip"), &gzip(BODY), BODY.len() - 1)
            .unwrap_err()
            .is_too_large()
    );
    assert!(
        decode_body(None, BODY, BODY.len() - 1)
            .unwrap_err()
            .is_too_large()
    );
}

#[test]
fn store_bodies_json_base64_and_base64_zlib() {
    let b64 = base64::engine::general_purpose::STANDARD;
    assert_eq!(&*decode_store_body(BODY, 1024).unwrap(), BODY);
    let with_bom = [&b"\xef\xbb\xbf"[..], BODY].concat();
    assert_eq!(
        &*decode_store_body(&with_bom, 1024).unwrap(),
        &with_bom[..],
        "JSON with a BOM stays JSON"
    );
    assert_eq!(
        &*decode_store_body(b64.encode(BODY).as_bytes(), 1024).unwrap(),
        BODY
    );
    assert_eq!(
        &*decode_store_body(b64.encode(zlib(BODY)).as_bytes(), 1024).unwrap(),
        BODY
    );
    let wrapped: String = b64
        .encode(zlib(BODY))
        .as_bytes()
        .chunks(20)
        .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
        .collect();
    assert_eq!(
        &*decode_store_body(wrapped.as_bytes(), 1024).unwrap(),
        BODY,
        "line-wrapped base64"
    );
    let err = decode_store_body(b"not json, not base64!", 1024).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("store body is neither JSON nor base64"),
        "{err}"
    );
    let err = decode_store_body(b64.encode(zlib(&[b' '; 5000])).as_bytes(), 1000).unwrap_err();
    assert!(err.is_too_large());
}

#[test]
fn first_line_is_decoded_without_the_rest() {
    use faultline_protocol::decode::decode_first_line;
    let mut body = b"{\"dsn\":\"http://k@h/1\"}\n".to_vec();
    body.extend(std::iter::repeat_n(b'x', 32 * 1024 * 1024));
    for (encoding, data) in [
        (None, body.clone()),
        (Some("gzip"), gzip(&body)),
        (Some("deflate"), zlib(&body)),
        (Some("deflate"), raw_deflate(&body)),
        (Some("br"), brotli(&body)),
        (Some("zstd"), zstd(&body)),
        (Some("gzip, br"), brotli(&gzip(&body))),
    ] {
        let line = decode_first_line(encoding, &data, 1024).unwrap();
        assert_eq!(line, b"{\"dsn\":\"http://k@h/1\"}", "{encoding:?}");
    }
    // a bomb without a newline stops at the line limit
    let bomb = gzip(&vec![b' '; 64 * 1024 * 1024]);
    let err = decode_first_line(Some("gzip"), &bomb, 1024).unwrap_err();
    assert!(
        matches!(err, DecodeError::LineTooLong { limit: 1024 }),
        "{err}"
    );
    // a short body without a newline is its own first line
    assert_eq!(decode_first_line(None, b"{}", 1024).unwrap(), b"{}");
}

#[test]
fn json_scalars_are_left_to_normalization_not_taken_for_base64() {
    for body in ["null", " true ", "42", "\"text\""] {
        let decoded = decode_store_body(body.as_bytes(), 1024).unwrap();
        assert_eq!(&*decoded, body.as_bytes());
    }
}
