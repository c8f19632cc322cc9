//! Envelope parsing: framing forms, limits and errors.

use faultline_protocol::ErrorKind;
use faultline_protocol::envelope::{Envelope, EnvelopeError, EnvelopeLimits, ItemType};
use uuid::Uuid;

fn limits() -> EnvelopeLimits {
    EnvelopeLimits {
        max_event_size: 1000,
        max_attachment_size: 5000,
    }
}

fn parse(data: &[u8]) -> Result<Envelope, EnvelopeError> {
    Envelope::parse(data, &limits())
}

fn payloads<'a>(envelope: &Envelope, data: &'a [u8]) -> Vec<(ItemType, &'a [u8])> {
    envelope
        .items
        .iter()
        .map(|item| (item.ty.clone(), item.payload(data)))
        .collect()
}

#[test]
fn length_prefixed_items_may_contain_newlines() {
    let data = b"{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\",\"dsn\":\"https://e12d836b15bb49d7bbf99e64295d995b@sentry.io/42\",\"sent_at\":\"2024-05-20T10:00:00.000Z\"}\n\
{\"type\":\"attachment\",\"length\":10,\"content_type\":\"text/plain\",\"filename\":\"hello.txt\"}\n\
\xef\xbb\xbfHello\r\n\n\
{\"type\":\"event\",\"length\":41,\"content_type\":\"application/json\"}\n\
{\"message\":\"hello world\",\"level\":\"error\"}\n";
    let envelope = parse(data).unwrap();
    assert_eq!(
        envelope.headers.event_id,
        Some(Uuid::parse_str("9ec79c33ec9942ab8353589fcb2e04dc").unwrap())
    );
    assert_eq!(
        envelope.headers.dsn.as_deref(),
        Some("https://e12d836b15bb49d7bbf99e64295d995b@sentry.io/42")
    );
    assert_eq!(
        envelope.headers.sent_at.map(|t| t.to_rfc3339()),
        Some("2024-05-20T10:00:00+00:00".to_owned())
    );
    assert_eq!(
        payloads(&envelope, data),
        vec![
            (ItemType::Attachment, &b"\xef\xbb\xbfHello\r\n"[..]),
            (
                ItemType::Event,
                &br#"{"message":"hello world","level":"error"}"#[..]
            ),
        ]
    );
    assert_eq!(envelope.items[0].header_str("filename"), Some("hello.txt"));
}

#[test]
fn newline_delimited_items_without_length() {
    let data =
        b"{}\n{\"type\":\"event\"}\n{\"message\":\"a\"}\n{\"type\":\"session\"}\n{\"sid\":\"x\"}\n";
    let envelope = parse(data).unwrap();
    assert_eq!(envelope.headers.event_id, None);
    assert_eq!(
        payloads(&envelope, data),
        vec![
            (ItemType::Event, &br#"{"message":"a"}"#[..]),
            (ItemType::Session, &br#"{"sid":"x"}"#[..]),
        ]
    );
}

#[test]
fn missing_trailing_newline_and_implicit_length_at_the_end() {
    let data = b"{}\n{\"type\":\"event\",\"length\":2}\n{}";
    assert_eq!(
        payloads(&parse(data).unwrap(), data),
        vec![(ItemType::Event, &b"{}"[..])]
    );
    let data = b"{}\n{\"type\":\"event\"}\n{\"message\":\"last\"}";
    assert_eq!(
        payloads(&parse(data).unwrap(), data),
        vec![(ItemType::Event, &br#"{"message":"last"}"#[..])]
    );
    let data = b"{}\n{\"type\":\"event\"}";
    assert_eq!(
        payloads(&parse(data).unwrap(), data),
        vec![(ItemType::Event, &b""[..])]
    );
}

#[test]
fn empty_lines_between_items_and_header_only_envelopes() {
    let data = b"{}\n\n{\"type\":\"event\"}\n{\"a\":1}\n\n\n{\"type\":\"client_report\"}\n{}\n\n";
    let envelope = parse(data).unwrap();
    assert_eq!(
        envelope
            .items
            .iter()
            .map(|i| i.ty.clone())
            .collect::<Vec<_>>(),
        vec![ItemType::Event, ItemType::ClientReport]
    );
    assert!(
        parse(b"{\"event_id\":\"9ec79c33-ec99-42ab-8353-589fcb2e04dc\"}\n")
            .unwrap()
            .items
            .is_empty()
    );
    assert!(parse(b"{}").unwrap().items.is_empty());
}

#[test]
fn item_types_by_name() {
    let names = [
        ("event", ItemType::Event),
        ("transaction", ItemType::Transaction),
        ("check_in", ItemType::CheckIn),
        ("replay_recording", ItemType::ReplayRecording),
        ("raw_security", ItemType::RawSecurity),
        ("statsd", ItemType::Other("statsd".into())),
    ];
    for (name, ty) in names {
        assert_eq!(ItemType::from_name(name), ty);
        assert_eq!(ty.as_str(), name);
    }
}

#[test]
fn bad_header_json_names_the_problem() {
    let err = parse(b"{not json}\n{\"type\":\"event\"}\n{}\n").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("envelope header is not valid JSON: "),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    assert_eq!(
        parse(b"[1]\n").unwrap_err().to_string(),
        "envelope header is not a JSON object"
    );
    assert_eq!(
        parse(b"{\"event_id\":\"nope\"}\n").unwrap_err().to_string(),
        "envelope header event_id \"nope\" is not a UUID"
    );
    assert_eq!(parse(b"").unwrap_err().to_string(), "envelope is empty");
    assert_eq!(parse(b" \n ").unwrap_err().to_string(), "envelope is empty");
}

#[test]
fn bad_items_name_item_and_problem() {
    let cases: [(&[u8], &str); 5] = [
        (
            b"{}\n{\"type\":\"event\"}\n{}\n{oops}\n",
            "item 2 header is not valid JSON: ",
        ),
        (
            b"{}\n{\"length\":2}\n{}\n",
            "item 1 header has no string `type`",
        ),
        (
            b"{}\n{\"type\":\"event\",\"length\":50}\n{}\n",
            "item 1 (event) declares length 50 but only 3 bytes follow",
        ),
        (
            b"{}\n{\"type\":\"event\",\"length\":-1}\n{}\n",
            "item 1 (event) has an invalid length: not a non-negative integer",
        ),
        (
            b"{}\n{\"type\":\"event\",\"length\":1}\n{}\n",
            "item 1 (event) payload is not followed by a newline",
        ),
    ];
    for (data, expected) in cases {
        let err = parse(data).unwrap_err();
        assert!(err.to_string().starts_with(expected), "{err}");
        assert!(!err.is_too_large());
    }
}

#[test]
fn item_over_max_event_size_is_too_large() {
    let event = format!("{{\"message\":\"{}\"}}", "x".repeat(1000));
    let data = format!("{{}}\n{{\"type\":\"session\"}}\n{{}}\n{{\"type\":\"event\"}}\n{event}\n");
    let err = parse(data.as_bytes()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "item 2 (event) exceeds max_event_size of 1000 bytes"
    );
    assert!(err.is_too_large());
    assert_eq!(err.kind(), ErrorKind::TooLarge);

    // the same bytes fit as an attachment, which has its own limit
    let data = format!(
        "{{}}\n{{\"type\":\"attachment\",\"length\":{}}}\n{event}\n",
        event.len()
    );
    assert_eq!(parse(data.as_bytes()).unwrap().items[0].len(), event.len());
    let big = "y".repeat(5001);
    let data = format!("{{}}\n{{\"type\":\"profile\",\"length\":5001}}\n{big}\n");
    assert_eq!(
        parse(data.as_bytes()).unwrap_err().to_string(),
        "item 1 (profile) exceeds max_attachment_size of 5000 bytes"
    );
    // an attachment over the limit is left to the caller, which refuses it alone
    let data = format!(
        "{{}}\n{{\"type\":\"attachment\",\"length\":5001}}\n{big}\n{{\"type\":\"event\"}}\n{{}}\n"
    );
    let envelope = parse(data.as_bytes()).unwrap();
    assert_eq!(envelope.items.len(), 2);
    assert_eq!(envelope.items[0].len(), 5001);
}

#[test]
fn a_refused_envelope_names_every_item_it_held_and_their_records() {
    // a log container over the limit between an event and a span container: the envelope is
    // refused as a whole, and the error carries all three items to be counted
    let logs = format!("{{\"items\":[{}]}}", vec![r#"{"body":"x"}"#; 100].join(","));
    let data = format!(
        "{{}}\n{{\"type\":\"event\"}}\n{{}}\n\
         {{\"type\":\"log\",\"item_count\":100}}\n{logs}\n\
         {{\"type\":\"span\",\"item_count\":3}}\n{{\"items\":[]}}\n\
         {{\"type\":\"check_in\",\"item_count\":7}}\n{{}}\n"
    );
    let err = parse(data.as_bytes()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "item 2 (log) exceeds max_event_size of 1000 bytes"
    );
    let EnvelopeError::ItemTooLarge { items, .. } = err else {
        panic!("not ItemTooLarge: {err:?}");
    };
    let counted: Vec<(ItemType, u64, usize)> = items
        .iter()
        .map(|item| (item.ty.clone(), item.records(), item.len()))
        .collect();
    assert_eq!(
        counted,
        [
            (ItemType::Event, 1, 2),
            (ItemType::Log, 100, logs.len()),
            (ItemType::Span, 3, 12),
            // only containers count records: a check-in is one whatever its header says
            (ItemType::CheckIn, 1, 2),
        ]
    );

    // an unreadable item after the one over the limit ends the list; the limit is the answer
    let data =
        format!("{{}}\n{{\"type\":\"log\"}}\n{logs}\n{{\"type\":\"event\",\"length\":99}}\n{{}}\n");
    match parse(data.as_bytes()).unwrap_err() {
        EnvelopeError::ItemTooLarge { index, items, .. } => {
            assert_eq!((index, items.len(), items[0].records()), (1, 1, 1));
        }
        other => panic!("not ItemTooLarge: {other:?}"),
    }
}
