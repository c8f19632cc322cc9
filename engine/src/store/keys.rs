//! Every object key of the Parquet files and manifests, built and parsed here.
//!
//! ```text
//! events/proj=<id>/date=<YYYY-MM-DD>/hour=<HH>/<ulid>.parquet   live event files
//! rollups/proj=<id>/date=<YYYY-MM-DD>/<ulid>.parquet            live issue rollups
//! issue-tags/proj=<id>/date=<YYYY-MM-DD>/<ulid>.parquet         live issue tag rollups
//! items/<table>/proj=<id>/date=<YYYY-MM-DD>/<ulid>.parquet      live rows of an item table
//! retired/events/..., retired/rollups/..., retired/issue-tags/..., retired/items/...
//!                                                                     replaced or expired files
//! manifest/<node>/<u64::MAX - version, 20 digits>.json                manifest versions
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
        assert_eq!(with_items.len(), 16);
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
        assert_eq!(prefixes.len(), 12);
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
