//! Every object key of the Parquet files and manifests, built and parsed here.
//!
//! ```text
//! events/proj=<id>/date=<YYYY-MM-DD>/hour=<HH>/<ulid>.parquet   live event files
//! rollups/proj=<id>/date=<YYYY-MM-DD>/<ulid>.parquet            live issue rollups
//! issue-tags/proj=<id>/date=<YYYY-MM-DD>/<ulid>.parquet         live issue tag rollups
//! items/<table>/proj=<id>/date=<YYYY-MM-DD>/<ulid>.parquet      live rows of an item table
//! attachments/proj=<id>/date=<YYYY-MM-DD>/<event id>/<attachment id>   attachment bytes
//! retired/events/..., retired/rollups/..., retired/issue-tags/..., retired/items/...
//!                                                                     replaced or expired files
//! manifest/<node>/<u64::MAX - version, 20 digits>.json                manifest versions
//! uploads/chunks/org=<org>/<sha1>                                     uploaded chunks, until assembled
//! meta/sourcemaps/org=<org>/bundles/<sha1>.zip                        artifact bundles (in backups)
//! meta/sourcemaps/org=<org>/records/<sha1>.json                       what a bundle holds, when last used
//! meta/sourcemaps/org=<org>/debug-ids/<debug id>.json                 which bundle holds a debug id's files
//! meta/sourcemaps/org=<org>/release-urls/<sha1 of release, dist, url>.json  the same by release and URL
//! meta/monitors/proj=<id>/<slug>.json                                 a cron monitor's state
//! meta/monitors/cursor.json                                           the monitor checker's cursor
//! ```
//!
//! The live prefixes hold exactly the files some manifest lists, so any Parquet reader that globs
//! `events/**/*.parquet` counts every stored event once. A file that leaves the manifests
//! (compaction replaced it, retention expired it) moves under `retired/` right after the
//! manifest commit and is deleted from there later.
//!
//! The partition key `proj=<id>` is no column name: a hive-partitioning reader adds it as a
//! column of its own instead of replacing one (`project=` replaced the `project` column, the
//! project's name, with the id; `project_id=` would clash in type with the `project_id` column,
//! which pyarrow, and so pandas, refuses). Files written before this layout (`project=<id>`)
//! stay where they are and are read through the manifests' paths; [`partition_prefixes`] covers
//! both layouts.

use object_store::path::Path as ObjectPath;

/// Live event files.
pub const EVENTS: &str = "events";
/// Live issue rollups.
pub const ROLLUPS: &str = "rollups";
/// Live issue tag rollups.
pub const TAG_ROLLUPS: &str = "issue-tags";
/// Live files of the item tables (transactions, spans, logs, feedback), one folder per table.
pub const ITEMS: &str = "items";
/// The bytes of attachments, one object each, beside the `attachments` table's rows. They are
/// written before the rows are acknowledged, no manifest lists them, and retention deletes a
/// day's attachments with the rest of its partition ([`partition_prefixes`]).
pub const ATTACHMENTS: &str = "attachments";
/// Files no manifest lists any more, until they are deleted.
pub const RETIRED: &str = "retired";
/// Manifest versions.
pub const MANIFESTS: &str = "manifest";

/// The hive key naming the project in a partition path.
pub const PROJECT_KEY: &str = "proj";
/// The project key of the first layout, still read.
const LEGACY_PROJECT_KEY: &str = "project";

/// A new event file of the partition (project, date, hour).
pub fn event_file(project_id: u64, date: &str, hour: u32, id: ulid::Ulid) -> String {
    format!("{EVENTS}/{PROJECT_KEY}={project_id}/date={date}/hour={hour:02}/{id}.parquet")
}

/// A new issue rollup file of (project, date).
pub fn rollup_file(project_id: u64, date: &str, id: ulid::Ulid) -> String {
    format!("{ROLLUPS}/{PROJECT_KEY}={project_id}/date={date}/{id}.parquet")
}

/// A new issue tag rollup file of (project, date).
pub fn tag_rollup_file(project_id: u64, date: &str, id: ulid::Ulid) -> String {
    format!("{TAG_ROLLUPS}/{PROJECT_KEY}={project_id}/date={date}/{id}.parquet")
}

/// A new file of the item table `table` for (project, date).
pub fn item_file(table: &str, project_id: u64, date: &str, id: ulid::Ulid) -> String {
    format!("{ITEMS}/{table}/{PROJECT_KEY}={project_id}/date={date}/{id}.parquet")
}

/// The object holding the bytes of one attachment. `date` is the day the attachment was
/// received (the day of its row in the `attachments` table); both ids are 32 hex digits.
pub fn attachment_object(
    project_id: u64,
    date: &str,
    event_id: &uuid::Uuid,
    attachment_id: &uuid::Uuid,
) -> ObjectPath {
    ObjectPath::from(format!(
        "{ATTACHMENTS}/{PROJECT_KEY}={project_id}/date={date}/{}/{}",
        event_id.simple(),
        attachment_id.simple()
    ))
}

/// The tag rollup file that belongs to the rollup file `rollup` (same partition and name).
pub fn tag_rollup_of(rollup: &str) -> Option<String> {
    rollup
        .strip_prefix(ROLLUPS)
        .filter(|rest| rest.starts_with('/'))
        .map(|rest| format!("{TAG_ROLLUPS}{rest}"))
}

/// Where a live file goes when it is retired; `None` for a key outside the live prefixes.
pub fn retired(live: &str) -> Option<String> {
    let under_live = [EVENTS, ROLLUPS, TAG_ROLLUPS, ITEMS]
        .iter()
        .any(|root| live.strip_prefix(root).is_some_and(|r| r.starts_with('/')));
    under_live.then(|| format!("{RETIRED}/{live}"))
}

/// Every prefix that can hold objects of the partition (project, date): live and retired, in
/// the current and the first layout, and those of the item tables `tables`.
pub fn partition_prefixes<'a>(
    project_id: u64,
    date: &str,
    tables: impl IntoIterator<Item = &'a str>,
) -> Vec<ObjectPath> {
    let mut prefixes = Vec::with_capacity(16);
    let tables: Vec<&str> = tables.into_iter().collect();
    for retired in ["", "retired/"] {
        for root in [EVENTS, ROLLUPS, TAG_ROLLUPS] {
            for key in [PROJECT_KEY, LEGACY_PROJECT_KEY] {
                prefixes.push(ObjectPath::from(format!(
                    "{retired}{root}/{key}={project_id}/date={date}"
                )));
            }
        }
        for table in &tables {
            prefixes.push(ObjectPath::from(format!(
                "{retired}{ITEMS}/{table}/{PROJECT_KEY}={project_id}/date={date}"
            )));
        }
    }
    prefixes.push(ObjectPath::from(format!(
        "{ATTACHMENTS}/{PROJECT_KEY}={project_id}/date={date}"
    )));
    prefixes
}

/// The folder of one node's manifest versions.
pub fn manifest_prefix(node: &str) -> ObjectPath {
    ObjectPath::from(format!("{MANIFESTS}/{node}"))
}

/// Version `version` of `node`'s manifest: the inverted number sorts the newest first.
pub fn manifest_version(node: &str, version: u64) -> ObjectPath {
    ObjectPath::from(format!(
        "{MANIFESTS}/{node}/{:020}.json",
        u64::MAX - version
    ))
}

/// The version a manifest key names, or `None` for any other object.
pub fn manifest_version_of(path: &ObjectPath) -> Option<u64> {
    let name = path.filename()?.strip_suffix(".json")?;
    if name.len() != 20 {
        return None;
    }
    name.parse::<u64>().ok().map(|inverted| u64::MAX - inverted)
}

/// Markers of deleted issues whose events maintenance has yet to erase.
pub const ISSUE_DELETIONS: &str = "meta/deletions";

/// The marker of a deleted issue (see `maintenance::erase`).
pub fn issue_deletion(project_id: u64, issue_id: i64) -> ObjectPath {
    ObjectPath::from(format!(
        "{ISSUE_DELETIONS}/project={project_id}/issue={issue_id}.json"
    ))
}

/// Markers of erased projects (see `tenancy::erasure` and `maintenance::erase`): kept for good,
/// so maintenance keeps erasing rows of the project that a late flush writes, and the id is
/// never given to another project.
pub const PROJECT_ERASURES: &str = "meta/erasures";

/// The marker of erased project `project_id`.
pub fn project_erasure(project_id: u64) -> ObjectPath {
    ObjectPath::from(format!(
        "{PROJECT_ERASURES}/{PROJECT_KEY}={project_id}.json"
    ))
}

/// Cron monitors and the monitor checker's cursor (written by the maintenance lease holder).
pub const MONITORS: &str = "meta/monitors";

/// The folder of every monitor.
pub fn monitors_prefix() -> ObjectPath {
    ObjectPath::from(MONITORS)
}

/// The monitor `slug` (a normalized slug: letters, digits, `-`, `_`) of a project.
pub fn monitor(project_id: u64, slug: &str) -> ObjectPath {
    ObjectPath::from(format!("{MONITORS}/proj={project_id}/{slug}.json"))
}

/// Where the monitor checker stopped reading check-ins.
pub fn monitors_cursor() -> ObjectPath {
    ObjectPath::from(format!("{MONITORS}/cursor.json"))
}

/// Uploaded chunks not assembled into a bundle yet (not backed up: sentry-cli uploads them again).
pub const CHUNKS: &str = "uploads/chunks";
/// Artifact bundles and their indexes, under `meta/` so backups carry them.
pub const SOURCEMAPS: &str = "meta/sourcemaps";

/// One uploaded chunk of `org`, named by the SHA-1 of its content.
pub fn chunk(org: &str, sha1: &str) -> ObjectPath {
    ObjectPath::from(format!("{CHUNKS}/org={org}/{sha1}"))
}

/// The folder of `org`'s chunks.
pub fn chunk_prefix(org: &str) -> ObjectPath {
    ObjectPath::from(format!("{CHUNKS}/org={org}"))
}

/// Every organization's chunks.
pub fn chunks_root() -> ObjectPath {
    ObjectPath::from(CHUNKS)
}

/// An assembled artifact bundle (the zip sentry-cli built), named by its SHA-1.
pub fn sourcemap_bundle(org: &str, sha1: &str) -> ObjectPath {
    ObjectPath::from(format!("{SOURCEMAPS}/org={org}/bundles/{sha1}.zip"))
}

/// The record of a bundle: its files, projects, release, when it was last used.
pub fn sourcemap_record(org: &str, sha1: &str) -> ObjectPath {
    ObjectPath::from(format!("{SOURCEMAPS}/org={org}/records/{sha1}.json"))
}

/// Every organization's bundle records.
pub fn sourcemap_records_root() -> ObjectPath {
    ObjectPath::from(SOURCEMAPS)
}

/// Written with every bundle of `org`: whether it ever uploaded any (so the events of an
/// organization without source maps are not looked at).
pub fn sourcemap_uploads(org: &str) -> ObjectPath {
    ObjectPath::from(format!("{SOURCEMAPS}/org={org}/uploads.json"))
}

/// Which bundle holds the files of a debug id (lowercase, dashed).
pub fn sourcemap_debug_id(org: &str, debug_id: &str) -> ObjectPath {
    ObjectPath::from(format!("{SOURCEMAPS}/org={org}/debug-ids/{debug_id}.json"))
}

/// Which bundle holds a file by release, dist and URL; `key` is the hex SHA-1 of the three.
pub fn sourcemap_release_url(org: &str, key: &str) -> ObjectPath {
    ObjectPath::from(format!("{SOURCEMAPS}/org={org}/release-urls/{key}.json"))
}

/// The organization a key under [`SOURCEMAPS`] or [`CHUNKS`] belongs to.
pub fn org_of(path: &ObjectPath) -> Option<&str> {
    path.as_ref()
        .split('/')
        .find_map(|part| part.strip_prefix("org="))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_documented_shape() {
        let id = ulid::Ulid::from_string("01KBR4S1GAJ6Y6B2FQ6Q8Y4R3M").unwrap();
        assert_eq!(
            event_file(7, "2026-12-04", 5, id),
            "events/proj=7/date=2026-12-04/hour=05/01KBR4S1GAJ6Y6B2FQ6Q8Y4R3M.parquet"
        );
        assert_eq!(
            issue_deletion(7, 42).as_ref(),
            "meta/deletions/project=7/issue=42.json"
        );
        assert_eq!(
            rollup_file(7, "2026-12-04", id),
            "rollups/proj=7/date=2026-12-04/01KBR4S1GAJ6Y6B2FQ6Q8Y4R3M.parquet"
        );
        assert_eq!(
            retired("events/project=7/date=2026-12-04/hour=05/a.parquet").as_deref(),
            Some("retired/events/project=7/date=2026-12-04/hour=05/a.parquet")
        );
        assert_eq!(
            retired("rollups/proj=7/date=2026-12-04/a.parquet").as_deref(),
            Some("retired/rollups/proj=7/date=2026-12-04/a.parquet")
        );
        assert_eq!(
            tag_rollup_file(7, "2026-12-04", id),
            "issue-tags/proj=7/date=2026-12-04/01KBR4S1GAJ6Y6B2FQ6Q8Y4R3M.parquet"
        );
        assert_eq!(
            retired("issue-tags/proj=7/date=2026-12-04/a.parquet").as_deref(),
            Some("retired/issue-tags/proj=7/date=2026-12-04/a.parquet")
        );
        assert_eq!(
            tag_rollup_of("rollups/proj=7/date=2026-12-04/a.parquet").as_deref(),
            Some("issue-tags/proj=7/date=2026-12-04/a.parquet")
        );
        assert_eq!(tag_rollup_of("events/proj=7/a.parquet"), None);
        assert_eq!(retired("manifest/n/1.json"), None);
        assert_eq!(retired("eventsx/a.parquet"), None);
        assert_eq!(
            item_file("spans", 7, "2026-12-04", id),
            "items/spans/proj=7/date=2026-12-04/01KBR4S1GAJ6Y6B2FQ6Q8Y4R3M.parquet"
        );
        assert_eq!(
            retired("items/logs/proj=7/date=2026-12-04/a.parquet").as_deref(),
            Some("retired/items/logs/proj=7/date=2026-12-04/a.parquet")
        );
        assert_eq!(retired("itemsx/a.parquet"), None);
        let with_items: Vec<String> = partition_prefixes(7, "2026-12-04", ["spans", "logs"])
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(with_items.len(), 17);
        assert!(with_items.contains(&"attachments/proj=7/date=2026-12-04".to_owned()));
        assert!(with_items.contains(&"items/spans/proj=7/date=2026-12-04".to_owned()));
        assert!(with_items.contains(&"retired/items/logs/proj=7/date=2026-12-04".to_owned()));
        let prefixes: Vec<String> = partition_prefixes(7, "2026-12-04", [])
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(prefixes.contains(&"events/proj=7/date=2026-12-04".to_owned()));
        assert!(prefixes.contains(&"events/project=7/date=2026-12-04".to_owned()));
        assert!(prefixes.contains(&"retired/rollups/proj=7/date=2026-12-04".to_owned()));
        assert!(prefixes.contains(&"issue-tags/proj=7/date=2026-12-04".to_owned()));
        assert_eq!(prefixes.len(), 13);
    }

    #[test]
    fn attachment_objects_sit_in_their_project_and_day() {
        let event = uuid::Uuid::parse_str("9ec79c33-ec99-42ab-8353-589fcb2e04dc").unwrap();
        let id = uuid::Uuid::parse_str("00000000000040008000000000000001").unwrap();
        let key = attachment_object(7, "2026-12-04", &event, &id);
        assert_eq!(
            key.as_ref(),
            "attachments/proj=7/date=2026-12-04/9ec79c33ec9942ab8353589fcb2e04dc/00000000000040008000000000000001"
        );
        // retention's sweep of the day covers it, and it is never taken for a live data file
        let prefixes = partition_prefixes(7, "2026-12-04", []);
        assert!(prefixes.iter().any(|p| key.prefix_matches(p)));
        assert!(
            !partition_prefixes(7, "2026-12-05", [])
                .iter()
                .any(|p| key.prefix_matches(p))
        );
        assert!(
            !partition_prefixes(8, "2026-12-04", [])
                .iter()
                .any(|p| key.prefix_matches(p))
        );
        assert_eq!(retired(key.as_ref()), None);
    }

    #[test]
    fn sourcemap_keys_have_the_documented_shape() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            chunk("acme", sha).as_ref(),
            format!("uploads/chunks/org=acme/{sha}")
        );
        assert_eq!(
            sourcemap_bundle("acme", sha).as_ref(),
            format!("meta/sourcemaps/org=acme/bundles/{sha}.zip")
        );
        let record = sourcemap_record("acme", sha);
        assert_eq!(
            record.as_ref(),
            format!("meta/sourcemaps/org=acme/records/{sha}.json")
        );
        assert_eq!(org_of(&record), Some("acme"));
        assert_eq!(
            sourcemap_debug_id("acme", "c0ffee00-0000-4000-8000-000000000001").as_ref(),
            "meta/sourcemaps/org=acme/debug-ids/c0ffee00-0000-4000-8000-000000000001.json"
        );
        assert!(
            sourcemap_release_url("acme", sha)
                .as_ref()
                .ends_with("release-urls/0123456789abcdef0123456789abcdef01234567.json")
        );
    }

    #[test]
    fn manifest_versions_sort_newest_first_and_parse_back() {
        let v1 = manifest_version("node-0", 1);
        let v2 = manifest_version("node-0", 2);
        assert!(v2 < v1);
        assert_eq!(v1.as_ref(), "manifest/node-0/18446744073709551614.json");
        assert_eq!(manifest_version_of(&v2), Some(2));
        assert_eq!(
            manifest_version_of(&ObjectPath::from("manifest/n/x.json")),
            None
        );
        assert_eq!(manifest_prefix("node-0").as_ref(), "manifest/node-0");
    }
}
