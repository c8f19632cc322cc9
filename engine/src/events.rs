//! The `events` table: its Arrow schema and the builder that turns normalized events into
//! record batches. The buffer, the Parquet files and the SQL layer all use this one schema.

use std::sync::{Arc, LazyLock};

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int32Builder, Int64Array, Int64Builder, MapBuilder, MapFieldNames,
    RecordBatch, StringBuilder, TimestampMillisecondArray, TimestampMillisecondBuilder,
};
use datafusion::arrow::datatypes::{
    DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit, TimestampMillisecondType,
};
use faultline_protocol::Event;

/// An event ready for storage: the normalized event plus what ingest derived for it.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub project_id: u64,
    pub project: String,
    pub issue_id: i64,
    /// The grouping hash (32 hex characters).
    pub grouping_hash: String,
    pub event: Event,
}

impl StoredEvent {
    /// An event of `project` (named `p<project>`) in `issue`, normalized from `payload`.
    #[cfg(test)]
    pub(crate) fn for_test(project: u64, issue: i64, payload: &str) -> Self {
        let ctx = faultline_protocol::normalize::NormalizeContext {
            received: chrono::Utc::now(),
            client_ip: None,
            event_id: None,
        };
        Self {
            project_id: project,
            project: format!("p{project}"),
            issue_id: issue,
            grouping_hash: "0".repeat(32),
            event: faultline_protocol::normalize::normalize_event(payload.as_bytes(), &ctx)
                .expect("a test payload normalizes"),
        }
    }

    /// Bytes this event occupies in the buffer, roughly (used for flush triggers).
    pub fn approximate_size(&self) -> usize {
        self.event.json.len() + 512
    }
}

fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// Names of the map's inner fields, as DataFusion's `MAP` type writes them.
fn map_field_names() -> MapFieldNames {
    MapFieldNames {
        entry: "entries".into(),
        key: "keys".into(),
        value: "values".into(),
    }
}

/// The schema of the `events` table, in column order.
pub fn schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let text = |name: &str| Field::new(name, DataType::Utf8, true);
        let tags_entries = Field::new(
            "entries",
            DataType::Struct(
                vec![
                    Field::new("keys", DataType::Utf8, false),
                    Field::new("values", DataType::Utf8, true),
                ]
                .into(),
            ),
            false,
        );
        Arc::new(Schema::new(vec![
            Field::new("event_id", DataType::Utf8, false),
            Field::new("project_id", DataType::Int64, false),
            Field::new("project", DataType::Utf8, false),
            Field::new("issue_id", DataType::Int64, false),
            Field::new("timestamp", timestamp_type(), false),
            Field::new("received", timestamp_type(), false),
            Field::new("level", DataType::Utf8, false),
            Field::new("platform", DataType::Utf8, false),
            text("release"),
            text("environment"),
            text("server_name"),
            text("transaction"),
            text("message"),
            Field::new("title", DataType::Utf8, false),
            text("exception_type"),
            text("exception_value"),
            text("culprit"),
            Field::new("frame_count", DataType::Int32, false),
            text("user_id"),
            text("user_email"),
            text("user_ip"),
            text("user_username"),
            Field::new("tags", DataType::Map(Arc::new(tags_entries), false), false),
            Field::new("fingerprint", DataType::Utf8, false),
            text("sdk_name"),
            text("sdk_version"),
            text("trace_id"),
            Field::new("event", DataType::Utf8, false),
        ]))
    });
    Arc::clone(&SCHEMA)
}

/// Index of a column of [`schema`] by name.
pub fn column_index(name: &str) -> usize {
    schema()
        .index_of(name)
        .unwrap_or_else(|_| panic!("events schema has no column {name}"))
}

/// An Int64 column (`project_id`, `issue_id`) of a batch of [`schema`].
pub fn int64_column<'a>(batch: &'a RecordBatch, name: &str) -> &'a Int64Array {
    batch.column(column_index(name)).as_primitive::<Int64Type>()
}

/// A timestamp column (`timestamp`, `received`) of a batch of [`schema`].
pub fn time_column<'a>(batch: &'a RecordBatch, name: &str) -> &'a TimestampMillisecondArray {
    batch
        .column(column_index(name))
        .as_primitive::<TimestampMillisecondType>()
}

/// Appends events row by row and produces record batches of [`schema`].
pub struct EventBuilder {
    event_id: StringBuilder,
    project_id: Int64Builder,
    project: StringBuilder,
    issue_id: Int64Builder,
    timestamp: TimestampMillisecondBuilder,
    received: TimestampMillisecondBuilder,
    level: StringBuilder,
    platform: StringBuilder,
    release: StringBuilder,
    environment: StringBuilder,
    server_name: StringBuilder,
    transaction: StringBuilder,
    message: StringBuilder,
    title: StringBuilder,
    exception_type: StringBuilder,
    exception_value: StringBuilder,
    culprit: StringBuilder,
    frame_count: Int32Builder,
    user_id: StringBuilder,
    user_email: StringBuilder,
    user_ip: StringBuilder,
    user_username: StringBuilder,
    tags: MapBuilder<StringBuilder, StringBuilder>,
    fingerprint: StringBuilder,
    sdk_name: StringBuilder,
    sdk_version: StringBuilder,
    trace_id: StringBuilder,
    event: StringBuilder,
    rows: usize,
    event_bytes: usize,
    /// Bytes reserved up front for the event JSON of one batch (0: grow as needed).
    event_capacity: usize,
}

impl Default for EventBuilder {
    fn default() -> Self {
        Self::new()
    }
}

/// Releases a finished array's spare capacity: builders grow by doubling, and a batch that
/// keeps twice the memory of its rows for as long as it is buffered would double the buffer.
fn fit<A: Array + 'static>(mut array: A) -> ArrayRef {
    array.shrink_to_fit();
    Arc::new(array)
}

fn millis(at: &DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

impl EventBuilder {
    pub fn new() -> Self {
        Self::with_event_capacity(0)
    }

    /// A builder that reserves `bytes` for the event JSON of each batch, so the largest column
    /// is written once instead of being copied every time it doubles.
    pub fn with_event_capacity(bytes: usize) -> Self {
        Self {
            event_id: StringBuilder::new(),
            project_id: Int64Builder::new(),
            project: StringBuilder::new(),
            issue_id: Int64Builder::new(),
            timestamp: TimestampMillisecondBuilder::new().with_timezone("UTC"),
            received: TimestampMillisecondBuilder::new().with_timezone("UTC"),
            level: StringBuilder::new(),
            platform: StringBuilder::new(),
            release: StringBuilder::new(),
            environment: StringBuilder::new(),
            server_name: StringBuilder::new(),
            transaction: StringBuilder::new(),
            message: StringBuilder::new(),
            title: StringBuilder::new(),
            exception_type: StringBuilder::new(),
            exception_value: StringBuilder::new(),
            culprit: StringBuilder::new(),
            frame_count: Int32Builder::new(),
            user_id: StringBuilder::new(),
            user_email: StringBuilder::new(),
            user_ip: StringBuilder::new(),
            user_username: StringBuilder::new(),
            tags: MapBuilder::new(
                Some(map_field_names()),
                StringBuilder::new(),
                StringBuilder::new(),
            ),
            fingerprint: StringBuilder::new(),
            sdk_name: StringBuilder::new(),
            sdk_version: StringBuilder::new(),
            trace_id: StringBuilder::new(),
            event: StringBuilder::with_capacity(1024, bytes),
            rows: 0,
            event_bytes: 0,
            event_capacity: bytes,
        }
    }

    /// Rows appended since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Bytes of event JSON appended since the last [`finish`](Self::finish).
    pub fn event_bytes(&self) -> usize {
        self.event_bytes
    }

    pub fn append(&mut self, stored: &StoredEvent) {
        let e = &stored.event;
        self.event_id.append_value(
            e.event_id
                .as_simple()
                .encode_lower(&mut uuid::Uuid::encode_buffer()),
        );
        self.project_id.append_value(stored.project_id as i64);
        self.project.append_value(&stored.project);
        self.issue_id.append_value(stored.issue_id);
        self.timestamp.append_value(millis(&e.timestamp));
        self.received.append_value(millis(&e.received));
        self.level.append_value(&e.level);
        self.platform.append_value(&e.platform);
        self.release.append_option(e.release.as_deref());
        self.environment.append_option(e.environment.as_deref());
        self.server_name.append_option(e.server_name.as_deref());
        self.transaction.append_option(e.transaction.as_deref());
        self.message.append_option(e.message.as_deref());
        self.title.append_value(&e.title);
        self.exception_type
            .append_option(e.exception_type.as_deref());
        self.exception_value
            .append_option(e.exception_value.as_deref());
        self.culprit.append_option(e.culprit.as_deref());
        self.frame_count.append_value(e.frame_count);
        self.user_id.append_option(e.user_id.as_deref());
        self.user_email.append_option(e.user_email.as_deref());
        self.user_ip.append_option(e.user_ip.as_deref());
        self.user_username.append_option(e.user_username.as_deref());
        for (key, value) in &e.tags {
            self.tags.keys().append_value(key);
            self.tags.values().append_value(value);
        }
        self.tags
            .append(true)
            .expect("tag keys and values are appended in pairs");
        self.fingerprint.append_value(&stored.grouping_hash);
        self.sdk_name.append_option(e.sdk_name.as_deref());
        self.sdk_version.append_option(e.sdk_version.as_deref());
        self.trace_id.append_option(e.trace_id.as_deref());
        self.event.append_value(&e.json);
        self.rows += 1;
        self.event_bytes += e.json.len();
    }

    /// The event JSON column. A pre-sized column keeps its spare capacity (bounded by the
    /// reservation) rather than being copied once more to shed it.
    /// A batch sealed early (a query asked for it) is mostly spare room: that one is shrunk.
    fn finish_event_column(&mut self) -> ArrayRef {
        if self.event_capacity == 0 {
            return fit(self.event.finish());
        }
        let column: ArrayRef = if self.event_bytes < self.event_capacity / 2 {
            fit(self.event.finish())
        } else {
            Arc::new(self.event.finish())
        };
        self.event = StringBuilder::with_capacity(1024, self.event_capacity);
        column
    }

    /// Produces a batch of the rows appended so far and resets the builder.
    pub fn finish(&mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            fit(self.event_id.finish()),
            fit(self.project_id.finish()),
            fit(self.project.finish()),
            fit(self.issue_id.finish()),
            fit(self.timestamp.finish()),
            fit(self.received.finish()),
            fit(self.level.finish()),
            fit(self.platform.finish()),
            fit(self.release.finish()),
            fit(self.environment.finish()),
            fit(self.server_name.finish()),
            fit(self.transaction.finish()),
            fit(self.message.finish()),
            fit(self.title.finish()),
            fit(self.exception_type.finish()),
            fit(self.exception_value.finish()),
            fit(self.culprit.finish()),
            fit(self.frame_count.finish()),
            fit(self.user_id.finish()),
            fit(self.user_email.finish()),
            fit(self.user_ip.finish()),
            fit(self.user_username.finish()),
            fit(self.tags.finish()),
            fit(self.fingerprint.finish()),
            fit(self.sdk_name.finish()),
            fit(self.sdk_version.finish()),
            fit(self.trace_id.finish()),
            self.finish_event_column(),
        ];
        self.rows = 0;
        self.event_bytes = 0;
        RecordBatch::try_new(schema(), columns).expect("builder columns match the events schema")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_protocol::normalize::{NormalizeContext, normalize_event};

    #[test]
    fn builder_matches_schema_and_keeps_tags() {
        let payload = br#"{"event_id":"0123456789abcdef0123456789abcdef","message":"boom","tags":{"a":"1","b":"2"},"level":"warning"}"#;
        let ctx = NormalizeContext {
            received: Utc::now(),
            client_ip: None,
            event_id: None,
        };
        let event = normalize_event(payload, &ctx).unwrap();
        let mut builder = EventBuilder::new();
        builder.append(&StoredEvent {
            project_id: 1,
            project: "shop".into(),
            issue_id: 42,
            grouping_hash: "00".repeat(16),
            event,
        });
        let batch = builder.finish();
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(batch.schema(), schema());
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&[batch
            .project(&[0, 6, column_index("tags")])
            .unwrap()])
        .unwrap()
        .to_string();
        assert!(text.contains("0123456789abcdef0123456789abcdef"), "{text}");
        assert!(text.contains("warning"), "{text}");
        assert!(text.contains("{a: 1, b: 2}"), "{text}");
        assert!(builder.is_empty());
    }
}
