//! The tables of envelope items other than error events: transactions, spans, logs,
//! feedback, attachments, outcomes, sessions and check-ins. One file per table gives its
//! schema and turns an item's payload into rows; this
//! module holds what they share and the registry [`TABLES`].
//!
//! A row is a flat JSON object whose keys are the table's columns (timestamps in
//! milliseconds, maps as objects of strings, nested data as JSON text). That JSON is what the
//! WAL logs (one record per row) and what replay reads back; Arrow's JSON decoder turns the
//! rows of a request into a batch of the table's schema at ingest, so a row that does not fit
//! its schema is refused before it is acknowledged, never found at a flush.
//!
//! Each table is stored like `events`: Parquet files per project and day under
//! `items/<table>/` (see `store/keys.rs`), listed in the manifest's `tables`, so retention,
//! backups and restore cover them; SQL reads them with the rows still in memory, restricted to
//! the session's projects.

pub mod attachments;
pub mod check_ins;
pub mod feedback;
pub mod logs;
pub mod outcomes;
pub mod sessions;
pub mod spans;
pub mod transactions;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde_json::{Map, Value};

/// One table of item rows.
#[derive(Debug)]
pub struct ItemTable {
    /// The SQL table's name, also the folder of its files.
    pub name: &'static str,
    /// The kind of WAL record its rows are logged as (0 is an event). Never reused.
    pub code: u8,
    /// The table's columns, after the ones every item table has ([`COMMON_COLUMNS`]).
    pub columns: &'static [(&'static str, Column)],
    schema: std::sync::OnceLock<SchemaRef>,
}

/// Every item table, in `SHOW TABLES` order (after the tables of `query/tables.rs`).
pub static TABLES: [&ItemTable; 8] = [
    &transactions::TABLE,
    &spans::TABLE,
    &logs::TABLE,
    &feedback::TABLE,
    &attachments::TABLE,
    &outcomes::TABLE,
    &sessions::TABLE,
    &check_ins::TABLE,
];

/// The names of every item table.
pub fn names() -> impl Iterator<Item = &'static str> {
    TABLES.iter().map(|t| t.name)
}

/// The table whose rows are logged with `code`.
pub fn by_code(code: u8) -> Option<&'static ItemTable> {
    TABLES.iter().copied().find(|t| t.code == code)
}

/// The table named `name`.
pub fn by_name(name: &str) -> Option<&'static ItemTable> {
    TABLES.iter().copied().find(|t| t.name == name)
}

/// The type of a column of an item table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// Nullable text.
    Text,
    /// A time in milliseconds (UTC), nullable.
    Time,
    /// A nullable 64-bit float.
    Float,
    /// A nullable 64-bit integer.
    Int,
    /// A nullable boolean.
    Bool,
    /// A map of text to text (tags, attributes), never null.
    Map,
}

/// The columns every item table starts with. `timestamp` is the row's time (the end of a
/// span or transaction): the manifest's time range of each file is about it.
pub const COMMON_COLUMNS: [(&str, Column); 4] = [
    ("project_id", Column::Int),
    ("project", Column::Text),
    ("timestamp", Column::Time),
    ("received", Column::Time),
];

impl ItemTable {
    pub(crate) const fn new(
        name: &'static str,
        code: u8,
        columns: &'static [(&'static str, Column)],
    ) -> Self {
        Self {
            name,
            code,
            columns,
            schema: std::sync::OnceLock::new(),
        }
    }

    /// The table's Arrow schema: [`COMMON_COLUMNS`], then its own.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(self.schema.get_or_init(|| {
            let fields: Vec<Field> = COMMON_COLUMNS
                .iter()
                .chain(self.columns)
                .map(|(name, column)| field(name, *column))
                .collect();
            Arc::new(Schema::new(fields))
        }))
    }

    /// A batch of an older layout of this table (a file written before a column was added)
    /// in today's: each missing column null. `None` when it cannot be (a column of another
    /// type, or a required one missing).
    pub fn adapt(&self, batch: &RecordBatch) -> Option<RecordBatch> {
        let schema = self.schema();
        if batch.schema().fields() == schema.fields() {
            return Some(batch.clone());
        }
        let columns = schema
            .fields()
            .iter()
            .map(|field| match batch.column_by_name(field.name()) {
                Some(column) if column.data_type() == field.data_type() => Some(Arc::clone(column)),
                Some(_) => None,
                None if field.is_nullable() => Some(datafusion::arrow::array::new_null_array(
                    field.data_type(),
                    batch.num_rows(),
                )),
                None => None,
            })
            .collect::<Option<Vec<_>>>()?;
        RecordBatch::try_new(schema, columns).ok()
    }

    /// Decodes rows (JSON objects of this table's columns, one after another) into a batch.
    pub fn decode<'a>(&self, rows: impl IntoIterator<Item = &'a [u8]>) -> Result<RecordBatch> {
        let rows: Vec<&[u8]> = rows.into_iter().collect();
        let mut decoder = datafusion::arrow::json::ReaderBuilder::new(self.schema())
            .with_batch_size(rows.len().max(1))
            .build_decoder()
            .map_err(|e| Error::Decode(e.to_string()))?;
        for row in rows {
            let used = decoder
                .decode(row)
                .map_err(|e| Error::Decode(e.to_string()))?;
            if used != row.len() {
                return Err(Error::Decode("a row is not one JSON object".into()));
            }
        }
        let batch = decoder.flush().map_err(|e| Error::Decode(e.to_string()))?;
        Ok(batch.unwrap_or_else(|| RecordBatch::new_empty(self.schema())))
    }
}

fn field(name: &str, column: Column) -> Field {
    let data_type = match column {
        Column::Text => DataType::Utf8,
        Column::Time => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        Column::Float => DataType::Float64,
        Column::Int => DataType::Int64,
        Column::Bool => DataType::Boolean,
        Column::Map => {
            let entries = Field::new(
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
            DataType::Map(Arc::new(entries), false)
        }
    };
    let required = matches!(name, "project_id" | "project" | "timestamp" | "received")
        || column == Column::Map;
    Field::new(name, data_type, !required)
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the payload is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the payload is not a JSON object")]
    NotObject,
    #[error("`{field}` is missing or not {expected}")]
    Field {
        field: &'static str,
        expected: &'static str,
    },
    #[error("the item has more than {limit} {what}")]
    TooMany { what: &'static str, limit: usize },
    #[error("invalid monitor_config: {0}")]
    Config(String),
    #[error("the rows do not fit their table: {0}")]
    Decode(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Longest text kept in one column; longer values are cut at a character boundary.
pub const MAX_TEXT: usize = 16 * 1024;

/// Rows one item may give at most (Relay's limit of spans per span container is 1000).
pub const MAX_ROWS_PER_ITEM: usize = 1000;

/// What every row of one request shares.
#[derive(Debug, Clone, Copy)]
pub struct RowContext<'a> {
    pub project_id: u64,
    pub project: &'a str,
    pub received: DateTime<Utc>,
    /// The project's data scrubbing rules, applied to every item before a row is made of it
    /// (`None` for rows faultline makes itself).
    pub scrubber: Option<&'a faultline_protocol::scrub::Scrubber>,
}

/// The rows of a container item (log records, streamed spans), and how many of its records
/// were left out as invalid: one bad record costs itself, not the records sent beside it (as
/// Relay drops a record, not its container).
#[derive(Debug)]
pub struct Records {
    pub rows: Vec<ItemRow>,
    pub invalid: u64,
}

/// Rows of which none was left out.
impl From<Vec<ItemRow>> for Records {
    fn from(rows: Vec<ItemRow>) -> Self {
        Self { rows, invalid: 0 }
    }
}

impl Records {
    /// The rows of a container's `records`, `push` adding the row of each (given its index): a
    /// record `push` refuses is left out and counted. When no record is valid, the first
    /// record's error is the item's, so a container of one bad record is an invalid item.
    pub(crate) fn of_each<'r, 'v>(
        mut rows: Rows<'r>,
        records: &'v [Value],
        mut push: impl FnMut(&mut Rows<'r>, usize, &'v Value) -> Result<()>,
    ) -> Result<Self> {
        let mut invalid = 0;
        let mut first_error = None;
        for (index, record) in records.iter().enumerate() {
            if let Err(err) = push(&mut rows, index, record) {
                tracing::debug!(record = index, cause = %err, "invalid record left out of its container");
                invalid += 1;
                first_error.get_or_insert(err);
            }
        }
        let rows = rows.finish();
        match first_error {
            Some(err) if rows.is_empty() => Err(err),
            _ => Ok(Self { rows, invalid }),
        }
    }
}

/// One row for the WAL: its table and its JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemRow {
    pub table: &'static ItemTable,
    pub project_id: u64,
    pub received_ms: i64,
    pub json: Vec<u8>,
    /// The id of the item the row came from, when it has one (a transaction's or feedback's
    /// event id): an SDK that retries sends it again, and ingest stores it once.
    pub item_id: Option<uuid::Uuid>,
    /// The scrubbing rules that changed something in the row's record (its `meta`), each once.
    pub scrubbed_by: Vec<String>,
}

impl ItemRow {
    /// The row as a WAL record of project `project` (its name).
    pub fn wal_fields<'a>(&'a self, project: &'a str) -> crate::wal::Fields<'a> {
        crate::wal::Fields {
            kind: self.table.code,
            project_id: self.project_id,
            issue_id: 0,
            received_ms: self.received_ms,
            grouping_hash: "",
            project,
            json: &self.json,
        }
    }
}

impl PartialEq for ItemTable {
    fn eq(&self, other: &Self) -> bool {
        self.code == other.code
    }
}

/// The rows of one table from one request, as logged and as a batch.
#[derive(Debug, Clone)]
pub struct ItemBatch {
    pub table: &'static ItemTable,
    pub batch: RecordBatch,
}

/// Builds the rows of one item.
pub(crate) struct Rows<'a> {
    table: &'static ItemTable,
    ctx: RowContext<'a>,
    rows: Vec<ItemRow>,
    item_id: Option<uuid::Uuid>,
}

impl<'a> Rows<'a> {
    pub(crate) fn new(table: &'static ItemTable, ctx: RowContext<'a>) -> Self {
        Self {
            table,
            ctx,
            rows: Vec::new(),
            item_id: None,
        }
    }

    /// Marks the rows as those of the item with this id (see [`ItemRow::item_id`]).
    pub(crate) fn of_item(mut self, id: &Value) -> Self {
        self.item_id = id.as_str().and_then(|s| uuid::Uuid::parse_str(s).ok());
        self
    }

    /// Adds a row of `columns` (the common columns other than `timestamp` are filled in; a
    /// `meta` given as a tree, [`Item::meta_at`], is stored as its text).
    pub(crate) fn push(&mut self, timestamp: DateTime<Utc>, mut columns: Map<String, Value>) {
        let mut scrubbed_by = Vec::new();
        if let Some(meta) = columns.get_mut("meta")
            && meta.is_object()
        {
            collect_rules(meta, &mut scrubbed_by);
            scrubbed_by.sort_unstable();
            scrubbed_by.dedup();
            *meta = Value::String(meta.to_string());
        }
        columns.insert("project_id".into(), self.ctx.project_id.into());
        columns.insert("project".into(), self.ctx.project.into());
        columns.insert("timestamp".into(), timestamp.timestamp_millis().into());
        columns.insert(
            "received".into(),
            self.ctx.received.timestamp_millis().into(),
        );
        let json = serde_json::to_vec(&Value::Object(columns)).unwrap_or_default();
        self.rows.push(ItemRow {
            table: self.table,
            project_id: self.ctx.project_id,
            received_ms: self.ctx.received.timestamp_millis(),
            json,
            item_id: self.item_id,
            scrubbed_by,
        });
    }

    pub(crate) fn finish(self) -> Vec<ItemRow> {
        self.rows
    }
}

/// An item payload, scrubbed with the project's rules, and what scrubbing changed in it.
pub(crate) struct Item {
    fields: Map<String, Value>,
    /// The `_meta` tree of the payload in Relay's shape (`{"body": {"": {"rem": [..]}}}`),
    /// paths relative to the payload's root; empty when nothing was changed.
    meta: Map<String, Value>,
}

impl std::ops::Deref for Item {
    type Target = Map<String, Value>;

    fn deref(&self) -> &Self::Target {
        &self.fields
    }
}

impl Item {
    /// The `meta` column of a row made of the record at `path` (a list of member names and
    /// indices, `[]` for the whole item): what was changed in that record, paths relative to
    /// the record (a tree, stored as text by [`Rows::push`]); null when nothing was.
    pub(crate) fn meta_at(&self, path: &[&str]) -> Value {
        let mut node = &self.meta;
        for key in path {
            match node.get(*key) {
                Some(Value::Object(inner)) => node = inner,
                _ => return Value::Null,
            }
        }
        meta_tree(node)
    }

    /// The `meta` column of a row made of the whole item but its member `except`, whose
    /// records are rows of their own (a transaction's `spans`).
    pub(crate) fn meta_without(&self, except: &str) -> Value {
        if !self.meta.contains_key(except) {
            return meta_tree(&self.meta);
        }
        let mut rest = self.meta.clone();
        rest.remove(except);
        meta_tree(&rest)
    }
}

fn meta_tree(meta: &Map<String, Value>) -> Value {
    if meta.is_empty() {
        Value::Null
    } else {
        Value::Object(meta.clone())
    }
}

/// The rules named by the remarks of a `_meta` tree (`{"": {"rem": [[rule, ...]]}}` at any
/// depth), size limits (`!limit`) left out.
fn collect_rules(meta: &Value, into: &mut Vec<String>) {
    let Value::Object(map) = meta else {
        return;
    };
    for (key, value) in map {
        if key.is_empty() {
            let remarks = value.get("rem").and_then(Value::as_array);
            for remark in remarks.into_iter().flatten() {
                if let Some(rule) = remark.get(0).and_then(Value::as_str)
                    && !rule.starts_with('!')
                {
                    into.push(rule.to_owned());
                }
            }
        } else {
            collect_rules(value, into);
        }
    }
}

/// Parses an item payload that must be a JSON object, scrubbed with the project's rules
/// (`ctx.scrubber`) before anything is read from it: like an event's, an item's secrets never
/// reach the WAL. Then every text longer than [`MAX_TEXT`] is cut (after scrubbing: a secret is
/// removed by its key before its value is cut). What was changed is kept for the rows' `meta`
/// column ([`Item::meta_at`]).
pub(crate) fn object(payload: &[u8], ctx: RowContext<'_>) -> Result<Item> {
    let Value::Object(mut fields) = serde_json::from_slice(payload)? else {
        return Err(Error::NotObject);
    };
    let mut remarks = faultline_protocol::scrub::Meta::default();
    if let Some(scrubber) = ctx.scrubber {
        scrubber.scrub(&mut fields, &mut remarks);
    }
    for (key, value) in fields.iter_mut() {
        let at = At {
            parent: None,
            step: Step::Key(key),
        };
        cut_long_texts(value, &at, &mut remarks);
    }
    let mut meta = Map::new();
    if !remarks.is_empty() {
        let mut holder = Map::new();
        remarks.write_into(&mut holder);
        if let Some(Value::Object(tree)) = holder.remove("_meta") {
            meta = tree;
        }
    }
    Ok(Item { fields, meta })
}

/// Where a value is in an item, built only when a remark needs it.
struct At<'a> {
    parent: Option<&'a At<'a>>,
    step: Step<'a>,
}

enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

impl At<'_> {
    fn path(&self) -> Vec<String> {
        let mut path = Vec::new();
        let mut at = Some(self);
        while let Some(node) = at {
            path.push(match node.step {
                Step::Key(key) => key.to_owned(),
                Step::Index(i) => i.to_string(),
            });
            at = node.parent;
        }
        path.reverse();
        path
    }
}

/// Cuts every string longer than [`MAX_TEXT`] bytes at a character boundary and ends it with
/// `...`, with the `!limit` remark and the original length in characters that events get.
fn cut_long_texts(value: &mut Value, at: &At<'_>, meta: &mut faultline_protocol::scrub::Meta) {
    match value {
        Value::String(text) if text.len() > MAX_TEXT => {
            let original = text.chars().count();
            let kept = cut(text, MAX_TEXT - 3).len();
            text.truncate(kept);
            text.push_str("...");
            let chars = text.chars().count();
            meta.push(
                at.path(),
                serde_json::json!(["!limit", "s", chars - 3, chars]),
                Some(original),
            );
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let here = At {
                    parent: Some(at),
                    step: Step::Index(i),
                };
                cut_long_texts(item, &here, meta);
            }
        }
        Value::Object(members) => {
            for (key, member) in members.iter_mut() {
                let here = At {
                    parent: Some(at),
                    step: Step::Key(key),
                };
                cut_long_texts(member, &here, meta);
            }
        }
        _ => {}
    }
}

/// A text value of `value`, cut to [`MAX_TEXT`]: strings as they are, numbers and booleans in
/// JSON, `None` for null or a missing value.
pub(crate) fn text(value: Option<&Value>) -> Value {
    match value {
        None | Some(Value::Null) => Value::Null,
        Some(Value::String(s)) => Value::String(cut(s, MAX_TEXT).to_owned()),
        Some(other) => Value::String(cut(&other.to_string(), MAX_TEXT).to_owned()),
    }
}

/// A nested value as JSON text (`None` when missing or empty).
pub(crate) fn json_text(value: Option<&Value>) -> Value {
    match value {
        None | Some(Value::Null) => Value::Null,
        Some(Value::Object(map)) if map.is_empty() => Value::Null,
        Some(other) => Value::String(other.to_string()),
    }
}

/// The longest start of `s` of at most `max` bytes that ends at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A map column from a JSON object: values as text ([`text`]); anything else gives an empty map.
pub(crate) fn string_map(value: Option<&Value>) -> Value {
    let Some(Value::Object(map)) = value else {
        return Value::Object(Map::new());
    };
    map.iter()
        .filter_map(|(k, v)| match text(Some(v)) {
            Value::Null => None,
            v => Some((cut(k, MAX_TEXT).to_owned(), v)),
        })
        .collect::<Map<_, _>>()
        .into()
}

/// Typed attributes (`{"key": {"value": ..., "type": "string"}}`, the shape of span v2 and
/// logs) as a map column of their values as text; plain values are taken as they are.
pub(crate) fn attributes(value: Option<&Value>) -> Value {
    let Some(Value::Object(map)) = value else {
        return Value::Object(Map::new());
    };
    map.iter()
        .filter_map(|(k, v)| {
            let inner = match v {
                Value::Object(typed) => typed.get("value"),
                plain => Some(plain),
            };
            match text(inner) {
                Value::Null => None,
                v => Some((cut(k, MAX_TEXT).to_owned(), v)),
            }
        })
        .collect::<Map<_, _>>()
        .into()
}

/// One attribute's value as text (see [`attributes`]).
pub(crate) fn attribute(attributes: &Value, key: &str) -> Value {
    attributes.get(key).cloned().unwrap_or(Value::Null)
}

/// Tags as SDKs send them: an object, or a list of `[key, value]` pairs.
pub(crate) fn tags(value: Option<&Value>) -> Value {
    match value {
        Some(Value::Array(pairs)) => pairs
            .iter()
            .filter_map(|pair| {
                let pair = pair.as_array()?;
                let key = pair.first()?.as_str()?;
                Some((cut(key, MAX_TEXT).to_owned(), text(pair.get(1))))
            })
            .filter(|(_, v)| !v.is_null())
            .collect::<Map<_, _>>()
            .into(),
        other => string_map(other),
    }
}

/// A time as SDKs send it (Unix seconds or ISO 8601).
pub(crate) fn time(value: Option<&Value>) -> Option<DateTime<Utc>> {
    faultline_protocol::normalize::parse_timestamp(value?)
}

/// Milliseconds between two times, with microseconds, as a JSON number.
pub(crate) fn duration_ms(start: Option<DateTime<Utc>>, end: DateTime<Utc>) -> Value {
    match start {
        Some(start) => {
            let micros = (end - start).num_microseconds().unwrap_or(0);
            serde_json::Number::from_f64(micros as f64 / 1000.0).map_or(Value::Null, Value::Number)
        }
        None => Value::Null,
    }
}

/// Milliseconds of a time as a JSON value (null when missing).
pub(crate) fn millis(at: Option<DateTime<Utc>>) -> Value {
    at.map_or(Value::Null, |t| t.timestamp_millis().into())
}

/// A UUID as 32 lowercase hex characters, as `events.event_id` stores it; `None` when `value`
/// is not a UUID.
pub(crate) fn uuid(value: Option<&Value>) -> Value {
    value
        .and_then(Value::as_str)
        .and_then(|s| uuid::Uuid::parse_str(s).ok())
        .map_or(Value::Null, |id| Value::String(id.simple().to_string()))
}

/// The value at a path of object keys.
pub(crate) fn at<'v>(value: &'v Map<String, Value>, path: &[&str]) -> Option<&'v Value> {
    let (first, rest) = path.split_first()?;
    let mut current = value.get(*first)?;
    for key in rest {
        current = current.as_object()?.get(*key)?;
    }
    Some(current)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use datafusion::arrow::util::pretty::pretty_format_batches;

    pub(crate) fn ctx() -> RowContext<'static> {
        RowContext {
            project_id: 7,
            project: "shop",
            received: DateTime::parse_from_rfc3339("2026-12-05T10:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            scrubber: None,
        }
    }

    /// A context whose project scrubs with Sentry's default rules.
    pub(crate) fn scrubbing_ctx() -> RowContext<'static> {
        static SCRUBBER: std::sync::LazyLock<faultline_protocol::scrub::Scrubber> =
            std::sync::LazyLock::new(|| {
                faultline_protocol::scrub::Scrubber::new(&Default::default()).unwrap()
            });
        RowContext {
            scrubber: Some(&SCRUBBER),
            ..ctx()
        }
    }

    /// The `meta` column of each row, parsed (`Null` where there is none).
    pub(crate) fn metas(rows: &[ItemRow]) -> Vec<Value> {
        rows.iter()
            .map(|row| {
                let json: Value = serde_json::from_slice(&row.json).unwrap();
                match &json["meta"] {
                    Value::String(text) => serde_json::from_str(text).unwrap(),
                    other => other.clone(),
                }
            })
            .collect()
    }

    /// The rows as a table, printed.
    pub(crate) fn printed(rows: &[ItemRow]) -> String {
        let table = rows[0].table;
        let batch = table
            .decode(rows.iter().map(|r| r.json.as_slice()))
            .unwrap();
        assert_eq!(batch.schema(), table.schema());
        pretty_format_batches(&[batch]).unwrap().to_string()
    }

    #[test]
    fn codes_and_names_are_unique_and_not_the_events_code() {
        for (i, a) in TABLES.iter().enumerate() {
            assert_ne!(a.code, 0, "0 is an event");
            assert_eq!(by_code(a.code).unwrap().name, a.name);
            assert_eq!(by_name(a.name).unwrap().code, a.code);
            for b in &TABLES[i + 1..] {
                assert_ne!(a.code, b.code);
                assert_ne!(a.name, b.name);
            }
        }
    }

    #[test]
    fn a_row_that_does_not_fit_its_schema_is_refused() {
        let err = logs::TABLE
            .decode([br#"{"project_id":"seven"}"#.as_slice()])
            .unwrap_err();
        assert!(err.to_string().contains("do not fit"), "{err}");
    }

    #[test]
    fn long_text_is_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_TEXT);
        let Value::String(cut) = text(Some(&Value::String(long))) else {
            panic!()
        };
        assert!(cut.len() <= MAX_TEXT && cut.len() >= MAX_TEXT - 1);
    }
}
