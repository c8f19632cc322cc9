//! Per-issue summaries of rollup rows, and the cache that keeps them per rollup file.
//!
//! Listing issues must not depend on how much data there is: it adds up the rollups of every
//! live rollup file, and a file's rollups never change once written (retention and compaction
//! retire whole files). So each file is read once, boiled down to one [`IssueSummary`] per issue
//! it holds (hourly counts, first and last seen, newest title, a sketch of the distinct users,
//! first and last release) and kept in memory; a query merges the summaries of the files its
//! session may read plus those of the rows still in the buffer. Files that left every manifest
//! leave the cache with the next query.
//!
//! Distinct users are counted with a HyperLogLog++ sketch (`cardinality-estimator`): exact up
//! to 128 users per issue and file, then within about 2% (precision 12, at most 3 KiB per
//! issue and file), like Sentry's own `uniq` counts of users.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use cardinality_estimator::CardinalityEstimator;
use chrono::{DateTime, Utc};
use datafusion::arrow::array::{
    Array, AsArray, BooleanBuilder, Int64Builder, RecordBatch, StringArray, StringBuilder,
    TimestampMillisecondBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit, TimestampMillisecondType,
};
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use parking_lot::Mutex;

use super::rollup::HOUR_MS;
use super::state::{IssueState, Status};
use super::{Error, Result};
use crate::store::Store;
use crate::store::manifest::DataFile;

/// A distinct-count sketch of user keys.
pub type Users = CardinalityEstimator<str>;

/// What a set of rollup rows says about one issue.
#[derive(Debug, Clone)]
pub struct IssueSummary {
    pub project_id: i64,
    pub issue_id: i64,
    pub project: String,
    /// Title, culprit and level of the newest event.
    pub title: Option<String>,
    pub culprit: Option<String>,
    pub level: Option<String>,
    pub first_seen: i64,
    pub last_seen: i64,
    pub last_received: i64,
    /// (start of the hour, events in it), in no particular order.
    pub hours: Vec<(i64, i64)>,
    pub users: Users,
    /// The release of the oldest and the newest hour that named one, with that hour's first
    /// and last seen.
    pub first_release: Option<(i64, String)>,
    pub last_release: Option<(i64, String)>,
}

impl IssueSummary {
    /// Adds what `other` (the same issue, other hours) says.
    fn merge(&mut self, other: &IssueSummary) {
        if other.last_seen >= self.last_seen {
            self.title.clone_from(&other.title);
            self.culprit.clone_from(&other.culprit);
            self.level.clone_from(&other.level);
        }
        self.first_seen = self.first_seen.min(other.first_seen);
        self.last_seen = self.last_seen.max(other.last_seen);
        self.last_received = self.last_received.max(other.last_received);
        self.hours.extend_from_slice(&other.hours);
        self.users.merge(&other.users);
        if let Some((at, release)) = &other.first_release
            && self.first_release.as_ref().is_none_or(|(t, _)| at < t)
        {
            self.first_release = Some((*at, release.clone()));
        }
        if let Some((at, release)) = &other.last_release
            && self.last_release.as_ref().is_none_or(|(t, _)| at >= t)
        {
            self.last_release = Some((*at, release.clone()));
        }
    }

    /// Events in the hours that end after `since`: an hour counts for "the last 24 hours" when
    /// any part of it does.
    fn events_since(&self, since: i64) -> i64 {
        self.hours
            .iter()
            .filter(|(hour, _)| hour + HOUR_MS > since)
            .map(|(_, n)| n)
            .sum()
    }
}

/// Summaries keyed by (project id, issue id).
pub type Summaries = HashMap<(i64, i64), IssueSummary>;

fn texts(batch: &RecordBatch, name: &str) -> Result<StringArray> {
    let column = batch
        .column_by_name(name)
        .ok_or_else(|| Error::BadRollup(format!("no column {name}")))?;
    let column = cast(column, &DataType::Utf8).map_err(|e| Error::Rollup(Box::new(e.into())))?;
    Ok(column.as_string::<i32>().clone())
}

fn int64s<'a>(
    batch: &'a RecordBatch,
    name: &str,
) -> Result<&'a datafusion::arrow::array::Int64Array> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<Int64Type>())
        .ok_or_else(|| Error::BadRollup(format!("column {name} is not an Int64")))
}

fn times<'a>(
    batch: &'a RecordBatch,
    name: &str,
) -> Result<&'a datafusion::arrow::array::TimestampMillisecondArray> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<TimestampMillisecondType>())
        .ok_or_else(|| Error::BadRollup(format!("column {name} is not a timestamp")))
}

fn text(array: &StringArray, row: usize) -> Option<String> {
    array.is_valid(row).then(|| array.value(row).to_owned())
}

/// Adds rollup rows (of `rollup::schema`, or of the SQL that wrote older files) to `into`.
pub fn add_rollups(into: &mut Summaries, batch: &RecordBatch) -> Result<()> {
    let (projects, issues, events) = (
        int64s(batch, "project_id")?,
        int64s(batch, "issue_id")?,
        int64s(batch, "events")?,
    );
    let (hours, first_seen, last_seen, last_received) = (
        times(batch, "hour")?,
        times(batch, "first_seen")?,
        times(batch, "last_seen")?,
        times(batch, "last_received")?,
    );
    let (project, title, culprit, level) = (
        texts(batch, "project")?,
        texts(batch, "title")?,
        texts(batch, "culprit")?,
        texts(batch, "level")?,
    );
    let (first_release, last_release) = (
        texts(batch, "first_release")?,
        texts(batch, "last_release")?,
    );
    let users = batch
        .column_by_name("users")
        .and_then(|c| c.as_list_opt::<i32>())
        .ok_or_else(|| Error::BadRollup("column users is not a list".into()))?;
    let user_names =
        cast(users.values(), &DataType::Utf8).map_err(|e| Error::Rollup(Box::new(e.into())))?;
    let user_names = user_names.as_string::<i32>();
    for row in 0..batch.num_rows() {
        let mut summary = IssueSummary {
            project_id: projects.value(row),
            issue_id: issues.value(row),
            project: project.value(row).to_owned(),
            title: text(&title, row),
            culprit: text(&culprit, row),
            level: text(&level, row),
            first_seen: first_seen.value(row),
            last_seen: last_seen.value(row),
            last_received: last_received.value(row),
            hours: vec![(hours.value(row), events.value(row))],
            users: Users::new(),
            first_release: text(&first_release, row).map(|r| (first_seen.value(row), r)),
            last_release: text(&last_release, row).map(|r| (last_seen.value(row), r)),
        };
        if users.is_valid(row) {
            let offsets = users.value_offsets();
            for i in offsets[row] as usize..offsets[row + 1] as usize {
                if user_names.is_valid(i) {
                    summary.users.insert(user_names.value(i));
                }
            }
        }
        match into.entry((summary.project_id, summary.issue_id)) {
            std::collections::hash_map::Entry::Occupied(mut e) => e.get_mut().merge(&summary),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(summary);
            }
        }
    }
    Ok(())
}

/// Reads one rollup file into summaries.
fn read_file(data: bytes::Bytes) -> Result<Summaries> {
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(data).map_err(|e| Error::Parquet(Box::new(e)))?;
    // Every column but the tag counts, which summaries do not keep.
    let wanted: Vec<usize> = (0..builder.schema().fields().len())
        .filter(|&i| builder.schema().field(i).name() != "tags")
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), wanted);
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(|e| Error::Parquet(Box::new(e)))?;
    let mut out = Summaries::new();
    for batch in reader {
        let batch = batch.map_err(|e| Error::Rollup(Box::new(e.into())))?;
        add_rollups(&mut out, &batch)?;
    }
    Ok(out)
}

/// The summaries of rollup files already read, by path.
#[derive(Default)]
pub struct RollupCache {
    files: Mutex<HashMap<String, Arc<Summaries>>>,
    /// Per set of projects: the files merged last time and their merged summaries. A query
    /// after a flush merges only the files added since.
    merged: Mutex<HashMap<Vec<u64>, MergedFiles>>,
}

/// Paths of rollup files and their summaries merged.
type MergedFiles = (HashSet<String>, Arc<Summaries>);

/// Project sets whose merged summaries are kept (each is a few MB at most).
const MERGED_SETS: usize = 64;

impl RollupCache {
    /// Forgets files that are no longer live (`live` lists every live rollup file).
    pub fn retain(&self, live: &[DataFile]) {
        let live: HashSet<&str> = live.iter().map(|f| f.path.as_str()).collect();
        self.files
            .lock()
            .retain(|path, _| live.contains(path.as_str()));
        self.merged
            .lock()
            .retain(|_, (merged, _)| merged.iter().all(|path| live.contains(path.as_str())));
    }

    /// The summaries of `files` merged into one per issue.
    pub async fn merged(&self, store: &Store, files: &[DataFile]) -> Result<Arc<Summaries>> {
        let parts = self.summaries(store, files).await?;
        let mut projects: Vec<u64> = files.iter().map(|f| f.project_id).collect();
        projects.sort_unstable();
        projects.dedup();
        let paths: HashSet<String> = parts.iter().map(|(path, _)| path.clone()).collect();
        let base = self
            .merged
            .lock()
            .get(&projects)
            .filter(|(done, _)| done.is_subset(&paths))
            .cloned();
        let (done, mut out) = match base {
            Some((done, merged)) if done.len() == paths.len() => return Ok(merged),
            Some((done, merged)) => (done, Summaries::clone(&merged)),
            None => (HashSet::new(), Summaries::new()),
        };
        for (path, part) in &parts {
            if !done.contains(path) {
                merge_into(&mut out, part);
            }
        }
        let out = Arc::new(out);
        let mut merged = self.merged.lock();
        if merged.len() >= MERGED_SETS {
            merged.clear();
        }
        merged.insert(projects, (paths, Arc::clone(&out)));
        Ok(out)
    }

    /// The summaries of `files`, reading those not yet cached (two at a time).
    pub async fn summaries(
        &self,
        store: &Store,
        files: &[DataFile],
    ) -> Result<Vec<(String, Arc<Summaries>)>> {
        let missing: Vec<String> = {
            let cached = self.files.lock();
            files
                .iter()
                .filter(|f| !cached.contains_key(&f.path))
                .map(|f| f.path.clone())
                .collect()
        };
        let read: Vec<(String, Arc<Summaries>)> = futures::stream::iter(missing)
            .map(|path| {
                let store = store.clone();
                async move {
                    let data = store.get(&ObjectPath::from(path.as_str())).await?;
                    let summaries = tokio::task::spawn_blocking(move || read_file(data))
                        .await
                        .map_err(|e| Error::BadRollup(format!("reading {path}: {e}")))??;
                    Ok::<_, Error>((path, Arc::new(summaries)))
                }
            })
            .buffer_unordered(2)
            .try_collect()
            .await?;
        let mut cached = self.files.lock();
        cached.extend(read);
        Ok(files
            .iter()
            .filter_map(|f| Some((f.path.clone(), Arc::clone(cached.get(&f.path)?))))
            .collect())
    }
}

/// Adds `part`'s summaries to `into`, one per issue.
pub fn merge_into(into: &mut Summaries, part: &Summaries) {
    for (key, summary) in part {
        match into.get_mut(key) {
            Some(existing) => existing.merge(summary),
            None => {
                into.insert(*key, summary.clone());
            }
        }
    }
}

/// The columns of `issues`.
pub fn issues_schema() -> SchemaRef {
    let ts = || DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    Arc::new(Schema::new(vec![
        Field::new("issue_id", DataType::Int64, false),
        Field::new("project_id", DataType::Int64, false),
        Field::new("project", DataType::Utf8, false),
        text("title"),
        text("culprit"),
        text("level"),
        Field::new("first_seen", ts(), false),
        Field::new("last_seen", ts(), false),
        Field::new("event_count", DataType::Int64, false),
        Field::new("events_24h", DataType::Int64, false),
        Field::new("events_14d", DataType::Int64, false),
        Field::new("users", DataType::Int64, false),
        text("first_release"),
        text("last_release"),
        Field::new("status", DataType::Utf8, false),
        Field::new("regressed", DataType::Boolean, false),
        Field::new("status_changed", ts(), true),
        Field::new("ignore_until", ts(), true),
        Field::new("ignore_until_count", DataType::Int64, true),
        text("assignee"),
        Field::new("merged_into", DataType::Int64, true),
    ]))
}

/// Longest chain of merges followed (a merged issue merged again).
const MERGE_DEPTH: usize = 16;

/// For each issue merged into another that exists, the issue it ends up in (following merges
/// of merged issues; a cycle or a target without events leaves the issue on its own).
fn merge_roots(
    summaries: &Summaries,
    states: &HashMap<(i64, i64), &IssueState>,
) -> HashMap<(i64, i64), (i64, i64)> {
    let target = |key: (i64, i64)| {
        states
            .get(&key)
            .and_then(|s| s.merged_into)
            .map(|into| (key.0, into))
            .filter(|t| summaries.contains_key(t))
    };
    let mut roots = HashMap::new();
    for (&key, state) in states {
        if state.merged_into.is_none() || !summaries.contains_key(&key) {
            continue;
        }
        let mut at = key;
        let mut steps = 0;
        while let Some(next) = target(at) {
            at = next;
            steps += 1;
            if at == key || steps > MERGE_DEPTH {
                break;
            }
        }
        if at != key && steps <= MERGE_DEPTH {
            roots.insert(key, at);
        }
    }
    roots
}

/// What a state reads as now, given the issue's events: a resolved issue with a newer event is
/// unresolved again (a regression); an ignore ends when its date passed or enough events came.
fn status(
    summary: &IssueSummary,
    count: i64,
    state: Option<&IssueState>,
    now: i64,
) -> (Status, bool) {
    let Some(state) = state else {
        return (Status::Unresolved, false);
    };
    match state.status {
        Status::Resolved if summary.last_received > state.changed.timestamp_millis() => {
            match &state.resolved_in_release {
                // Resolved in the next release: only an event of another release reopens it
                // (the release of the newest event that named one, seen after the change).
                Some(release) => match &summary.last_release {
                    Some((at, newest))
                        if *at > state.changed.timestamp_millis() && newest != release =>
                    {
                        (Status::Unresolved, true)
                    }
                    _ => (Status::Resolved, false),
                },
                None => (Status::Unresolved, true),
            }
        }
        Status::Ignored
            if state
                .ignore_until
                .is_some_and(|until| until.timestamp_millis() < now)
                || state
                    .ignore_until_count
                    .is_some_and(|n| count - state.count_at_change as i64 >= n as i64) =>
        {
            (Status::Unresolved, false)
        }
        // events after the deletion (the others are gone, or about to be)
        Status::Deleted => (Status::Unresolved, false),
        other => (other, false),
    }
}

/// One row per issue in `summaries`, with its state from `states`, as of `now`.
pub fn issues_batch(
    summaries: &Summaries,
    states: &[IssueState],
    now: DateTime<Utc>,
) -> RecordBatch {
    let now = now.timestamp_millis();
    let states: HashMap<(i64, i64), &IssueState> = states
        .iter()
        .map(|s| ((s.project_id as i64, s.issue_id), s))
        .collect();
    // A merged issue keeps its own row (status `merged`); the issue it is merged into adds up
    // its events, users and times, and keeps its own title.
    let roots = merge_roots(summaries, &states);
    let mut folded: HashMap<(i64, i64), IssueSummary> = HashMap::new();
    let mut members: Vec<_> = roots.iter().collect();
    members.sort_unstable();
    for (member, root) in members {
        let into = folded
            .entry(*root)
            .or_insert_with(|| summaries[root].clone());
        let (title, culprit, level) =
            (into.title.clone(), into.culprit.clone(), into.level.clone());
        into.merge(&summaries[member]);
        (into.title, into.culprit, into.level) = (title, culprit, level);
    }
    // A deleted issue is gone, unless events came after its deletion: then it starts afresh.
    let mut keys: Vec<_> = summaries
        .iter()
        .filter(|(key, s)| {
            states.get(key).is_none_or(|st| {
                st.status != Status::Deleted || s.last_received > st.changed.timestamp_millis()
            })
        })
        .map(|(key, _)| *key)
        .collect();
    keys.sort_unstable();
    let n = keys.len();
    let ts = || TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
    let int = || Int64Builder::with_capacity(n);
    let (
        mut issue_id,
        mut project_id,
        mut count,
        mut day,
        mut fortnight,
        mut users,
        mut until_count,
    ) = (int(), int(), int(), int(), int(), int(), int());
    let mut merged_into = int();
    let (mut first_seen, mut last_seen, mut changed, mut until) = (ts(), ts(), ts(), ts());
    let mut strings: [StringBuilder; 8] = std::array::from_fn(|_| StringBuilder::new());
    let mut regressed = BooleanBuilder::with_capacity(n);
    for key in keys {
        let root = roots.get(&key);
        let s = folded.get(&key).unwrap_or(&summaries[&key]);
        let total: i64 = s.hours.iter().map(|(_, n)| n).sum();
        let state = states.get(&key).copied();
        let (status, regression) = match (root, state) {
            (Some(_), _) => (Status::Merged, false),
            // Merged into an issue that is gone (retention): on its own again.
            (None, Some(st)) if st.status == Status::Merged => (Status::Unresolved, false),
            _ => status(s, total, state, now),
        };
        merged_into.append_option(root.map(|r| r.1));
        issue_id.append_value(s.issue_id);
        project_id.append_value(s.project_id);
        first_seen.append_value(s.first_seen);
        last_seen.append_value(s.last_seen);
        count.append_value(total);
        day.append_value(s.events_since(now - 24 * HOUR_MS));
        fortnight.append_value(s.events_since(now - 14 * 24 * HOUR_MS));
        users.append_value(s.users.estimate() as i64);
        regressed.append_value(regression);
        changed.append_option(state.map(|s| s.changed.timestamp_millis()));
        until.append_option(
            state
                .and_then(|s| s.ignore_until)
                .map(|t| t.timestamp_millis()),
        );
        until_count.append_option(state.and_then(|s| s.ignore_until_count).map(|n| n as i64));
        let texts = [
            Some(s.project.as_str()),
            s.title.as_deref(),
            s.culprit.as_deref(),
            s.level.as_deref(),
            s.first_release.as_ref().map(|(_, r)| r.as_str()),
            s.last_release.as_ref().map(|(_, r)| r.as_str()),
            Some(status.as_str()),
            state.and_then(|s| s.assignee.as_deref()),
        ];
        for (builder, text) in strings.iter_mut().zip(texts) {
            builder.append_option(text);
        }
    }
    let [
        mut project,
        mut title,
        mut culprit,
        mut level,
        mut first_release,
        mut last_release,
        mut status,
        mut assignee,
    ] = strings;
    RecordBatch::try_new(
        issues_schema(),
        vec![
            Arc::new(issue_id.finish()),
            Arc::new(project_id.finish()),
            Arc::new(project.finish()),
            Arc::new(title.finish()),
            Arc::new(culprit.finish()),
            Arc::new(level.finish()),
            Arc::new(first_seen.finish()),
            Arc::new(last_seen.finish()),
            Arc::new(count.finish()),
            Arc::new(day.finish()),
            Arc::new(fortnight.finish()),
            Arc::new(users.finish()),
            Arc::new(first_release.finish()),
            Arc::new(last_release.finish()),
            Arc::new(status.finish()),
            Arc::new(regressed.finish()),
            Arc::new(changed.finish()),
            Arc::new(until.finish()),
            Arc::new(until_count.finish()),
            Arc::new(assignee.finish()),
            Arc::new(merged_into.finish()),
        ],
    )
    .expect("issues batch matches its schema")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EventBuilder, StoredEvent};
    use crate::issues::rollup;

    fn rollups(events: &[(i64, &str, &str)]) -> Vec<RecordBatch> {
        let mut b = EventBuilder::new();
        for (issue, at, user) in events {
            b.append(&StoredEvent::for_test(
                1,
                *issue,
                &format!(r#"{{"message":"m","timestamp":"{at}","user":{{"id":"{user}"}}}}"#),
            ));
        }
        rollup::compute(&[b.finish()]).unwrap()
    }

    #[tokio::test]
    async fn files_are_read_once_and_users_counted_once_across_files() {
        let store = Store::memory();
        let mut files = rollup::write(
            &store,
            &rollups(&[
                (7, "2026-11-20T10:00:00Z", "ann"),
                (7, "2026-11-20T11:00:00Z", "bob"),
                (8, "2026-11-20T11:00:00Z", "ann"),
            ]),
            1,
        )
        .await
        .unwrap();
        files.extend(
            rollup::write(
                &store,
                &rollups(&[
                    (7, "2026-11-21T10:00:00Z", "bob"),
                    (7, "2026-11-21T10:30:00Z", "cid"),
                ]),
                1,
            )
            .await
            .unwrap(),
        );
        let cache = RollupCache::default();
        let merged = cache.merged(&store, &files[..1]).await.unwrap();
        assert_eq!(merged[&(1, 7)].users.estimate(), 2, "ann, bob");
        let merged = cache.merged(&store, &files).await.unwrap();
        let seven = &merged[&(1, 7)];
        assert_eq!(seven.users.estimate(), 3, "ann, bob, cid");
        assert_eq!(seven.hours.iter().map(|(_, n)| n).sum::<i64>(), 4);
        assert_eq!(merged[&(1, 8)].users.estimate(), 1);

        // Cached: answered without the objects; once a file is no longer live it is read again.
        for file in &files {
            store
                .delete(&ObjectPath::from(file.path.as_str()))
                .await
                .unwrap();
        }
        assert_eq!(cache.summaries(&store, &files).await.unwrap().len(), 2);
        cache.retain(&files[1..]);
        assert!(cache.summaries(&store, &files).await.is_err());
    }

    #[test]
    fn windows_count_recent_hours_and_state_reads_as_events_say() {
        let now = Utc::now();
        let at = |hours_ago: i64| (now - chrono::Duration::hours(hours_ago)).to_rfc3339();
        let (a, b, c) = (at(1), at(30), at(24 * 20));
        let mut summaries = Summaries::new();
        for batch in rollups(&[(7, &a, "ann"), (7, &b, "ann"), (7, &c, "bob")]) {
            add_rollups(&mut summaries, &batch).unwrap();
        }
        let resolved_before = IssueState {
            project_id: 1,
            issue_id: 7,
            version: 1,
            status: Status::Resolved,
            changed: now - chrono::Duration::hours(2),
            by: "t".into(),
            ignore_until: None,
            ignore_until_count: None,
            count_at_change: 2,
            assignee: None,
            resolved_in_release: None,
            action: None,
            merged_into: None,
            erased_at: None,
        };
        let batch = issues_batch(&summaries, &[resolved_before], now);
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&[batch
            .project(&[8, 9, 10, 11, 14, 15])
            .unwrap()])
        .unwrap()
        .to_string();
        let row: Vec<_> = text
            .lines()
            .nth(3)
            .unwrap()
            .split('|')
            .map(str::trim)
            .collect();
        // event_count, events_24h, events_14d, users, status, regressed
        assert_eq!(row[1..7], ["3", "1", "2", "2", "unresolved", "true"]);
    }
}
