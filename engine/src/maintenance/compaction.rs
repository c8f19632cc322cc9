//! Compaction: the small files of one partition (project, date, hour) of one node's manifest
//! are merged into files of about `compaction.target_size`, re-sorted by (issue id,
//! timestamp) and compressed at `compaction.zstd_level`. The issue rollups of one (project,
//! day), one file per flush, are merged into one file sorted by issue, with its tag rollups
//! made anew from it, so a page reading a month of rollups opens a file per day.
//!
//! The merged file is written first; then one manifest edit replaces exactly its inputs with
//! it, only if every input is still live (retention may have dropped them meanwhile; then the
//! merged file is deleted and nothing changes). A query reads either the old files or the new
//! one, never both: its file list comes from one manifest version. The inputs are retired, not
//! deleted: they move under `retired/` right after the commit, out of the live prefix other
//! Parquet readers glob, and a query that planned with them still finds them there.
//!
//! The small files of an item table (one per flush, table, project and day) are merged the same
//! way, per (table, project, day), into one file in time order.

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;
use chrono::Utc;
use datafusion::arrow::array::RecordBatch;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::file::FOOTER_SIZE;
use datafusion::parquet::file::metadata::{FooterTail, ParquetMetaDataReader};
use object_store::ObjectStoreExt as _;
use object_store::path::Path as ObjectPath;
use serde::Serialize;

use super::progress::Progress;
use super::{Error, Maintenance, Result};
use crate::store::keys;
use crate::store::manifest::{DataFile, Manifest, Retired};
use crate::store::parquet::{
    COMPACTED_EVENT_PAGE_BYTES, encode, plan_partitions, writer_properties,
};

/// What a compaction run merged.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CompactionReport {
    pub dry_run: bool,
    pub merged: Vec<Merge>,
}

/// One merge: `inputs` files of a partition became one.
#[derive(Debug, Clone, Serialize)]
pub struct Merge {
    /// What was merged: `events` (files of a project and hour), `rollups` (the issue rollups
    /// of a project and day, with their tag rollups), or an item table's name (its files of a
    /// project and day).
    pub kind: &'static str,
    pub node: String,
    pub project_id: u64,
    pub date: String,
    pub hour: u8,
    pub inputs: usize,
    pub rows: u64,
    /// The merged file, or `None` in a dry run, when the inputs changed meanwhile, or when
    /// fewer than two of them fitted `compaction.max_merge_bytes`.
    pub output: Option<String>,
}

/// What one merge did: its output and the inputs it took (a prefix of the planned group when
/// the group's decoded size passes `compaction.max_merge_bytes`).
struct Merged {
    output: String,
    inputs: usize,
    rows: u64,
}

impl Merge {
    fn record(&mut self, merged: Option<Merged>) {
        if let Some(merged) = merged {
            self.output = Some(merged.output);
            self.inputs = merged.inputs;
            self.rows = merged.rows;
        }
    }
}

/// Groups of small files to merge in one manifest: per partition, consecutive runs whose
/// total size stays under the target.
fn plan(manifest: &Manifest, target: u64, min_files: usize) -> Vec<Vec<DataFile>> {
    let mut partitions: BTreeMap<(u64, &str, u8), Vec<&DataFile>> = BTreeMap::new();
    for file in manifest.files.iter().filter(|f| f.bytes < target) {
        partitions
            .entry((file.project_id, file.date.as_str(), file.hour))
            .or_default()
            .push(file);
    }
    let mut groups = Vec::new();
    for files in partitions.into_values() {
        if files.len() < min_files {
            continue;
        }
        let mut group: Vec<DataFile> = Vec::new();
        let mut size = 0;
        for file in files {
            if size + file.bytes > target && group.len() >= 2 {
                groups.push(std::mem::take(&mut group));
                size = 0;
            }
            size += file.bytes;
            group.push(file.clone());
        }
        if group.len() >= 2 {
            groups.push(group);
        }
    }
    groups
}

pub(super) fn decode(path: &str, data: Bytes) -> Result<Vec<RecordBatch>> {
    let error = |message: String| Error::Compact {
        path: path.to_owned(),
        message,
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(data)
        .and_then(|b| b.build())
        .map_err(|e| error(e.to_string()))?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(e.to_string()))
}

/// Groups of rollup files to merge: per (project, day) of one manifest, all of them once
/// there are at least `min_files`.
fn plan_rollups(manifest: &Manifest, min_files: usize) -> Vec<Vec<DataFile>> {
    let mut partitions: BTreeMap<(u64, &str), Vec<&DataFile>> = BTreeMap::new();
    for file in &manifest.rollups {
        partitions
            .entry((file.project_id, file.date.as_str()))
            .or_default()
            .push(file);
    }
    partitions
        .into_values()
        .filter(|files| files.len() >= min_files.max(2))
        .map(|files| files.into_iter().cloned().collect())
        .collect()
}

/// Groups of small item table files to merge: per (table, project, day) of one manifest, all
/// of those below the target once there are at least `min_files`.
fn plan_items(
    manifest: &Manifest,
    target: u64,
    min_files: usize,
) -> Vec<(&'static crate::items::ItemTable, Vec<DataFile>)> {
    let mut groups = Vec::new();
    for (name, files) in &manifest.tables {
        let Some(table) = crate::items::by_name(name) else {
            continue;
        };
        let mut partitions: BTreeMap<(u64, &str), Vec<&DataFile>> = BTreeMap::new();
        for file in files.iter().filter(|f| f.bytes < target) {
            partitions
                .entry((file.project_id, file.date.as_str()))
                .or_default()
                .push(file);
        }
        groups.extend(
            partitions
                .into_values()
                .filter(|files| files.len() >= min_files.max(2))
                .map(|files| (table, files.into_iter().cloned().collect())),
        );
    }
    groups
}

impl Maintenance {
    /// Merges the small files of every node's manifest.
    #[tracing::instrument(level = "info", skip(self))]
    pub async fn compact(&self, dry_run: bool, interactive: bool) -> Result<CompactionReport> {
        let started = std::time::Instant::now();
        let target = self.config.compaction.target_size.as_u64();
        let min_files = self.config.compaction.min_files;
        let mut report = CompactionReport {
            dry_run,
            merged: Vec::new(),
        };
        let manifests = Manifest::load_all(&self.store).await?;
        let work: Vec<(String, Vec<DataFile>)> = manifests
            .iter()
            .flat_map(|m| {
                plan(m, target, min_files)
                    .into_iter()
                    .map(|g| (m.node.clone(), g))
            })
            .collect();
        let (files, bytes) = work.iter().fold((0, 0), |(n, b), (_, g)| {
            (
                n + g.len() as u64,
                b + g.iter().map(|f| f.bytes).sum::<u64>(),
            )
        });
        let progress = (!dry_run && !work.is_empty())
            .then(|| Progress::new("compaction", files, bytes, interactive));
        for (node, group) in work {
            let first = &group[0];
            let mut merge = Merge {
                kind: "events",
                node: node.clone(),
                project_id: first.project_id,
                date: first.date.clone(),
                hour: first.hour,
                inputs: group.len(),
                rows: group.iter().map(|f| f.rows).sum(),
                output: None,
            };
            if !dry_run {
                let merged = self.merge(&node, &group, progress.as_ref()).await?;
                merge.record(merged);
            }
            report.merged.push(merge);
        }
        if let Some(progress) = progress {
            progress.finish();
        }
        for manifest in &manifests {
            for group in plan_rollups(manifest, min_files) {
                let first = &group[0];
                let mut merge = Merge {
                    kind: "rollups",
                    node: manifest.node.clone(),
                    project_id: first.project_id,
                    date: first.date.clone(),
                    hour: 0,
                    inputs: group.len(),
                    rows: group.iter().map(|f| f.rows).sum(),
                    output: None,
                };
                if !dry_run {
                    merge.output = self.merge_rollups(&manifest.node, &group).await?;
                }
                report.merged.push(merge);
            }
        }
        let target = self.config.compaction.target_size.as_u64();
        for manifest in &manifests {
            for (table, group) in plan_items(manifest, target, min_files) {
                let first = &group[0];
                let mut merge = Merge {
                    kind: table.name,
                    node: manifest.node.clone(),
                    project_id: first.project_id,
                    date: first.date.clone(),
                    hour: 0,
                    inputs: group.len(),
                    rows: group.iter().map(|f| f.rows).sum(),
                    output: None,
                };
                if !dry_run {
                    let merged = self.merge_items(&manifest.node, table, &group).await?;
                    merge.record(merged);
                }
                report.merged.push(merge);
            }
        }
        if !dry_run {
            self.purge().await?;
            crate::metrics::compacted(started);
        }
        Ok(report)
    }

    /// The decoded (uncompressed) size of a file's data, from its Parquet footer alone (two
    /// ranged reads, not the whole file).
    pub(super) async fn decoded_size(&self, file: &DataFile) -> Result<u64> {
        let error = |message: String| Error::Compact {
            path: file.path.clone(),
            message,
        };
        let path = ObjectPath::from(file.path.as_str());
        let objects = &self.store.objects;
        let tail_at = file
            .bytes
            .checked_sub(FOOTER_SIZE as u64)
            .ok_or_else(|| error("shorter than a Parquet footer".to_owned()))?;
        let tail = objects
            .get_range(&path, tail_at..file.bytes)
            .await
            .map_err(|e| error(e.to_string()))?;
        let length = FooterTail::try_from(tail.as_ref())
            .map_err(|e| error(e.to_string()))?
            .metadata_length() as u64;
        let metadata_at = tail_at
            .checked_sub(length)
            .ok_or_else(|| error("its footer is longer than the file".to_owned()))?;
        let footer = objects
            .get_range(&path, metadata_at..tail_at)
            .await
            .map_err(|e| error(e.to_string()))?;
        let metadata =
            ParquetMetaDataReader::decode_metadata(&footer).map_err(|e| error(e.to_string()))?;
        Ok(metadata
            .row_groups()
            .iter()
            .map(|group| u64::try_from(group.total_byte_size()).unwrap_or(0))
            .sum())
    }

    /// Reads and decodes the files of `group` in order while their decoded size (from each
    /// file's Parquet footer) fits `compaction.max_merge_bytes`, so a merge holds a bounded
    /// amount of memory however large its partition. A file of half the budget or more is
    /// left as it is: merging it again would only grow it. The files left after the first
    /// that does not fit wait for the next run. Returns the files taken with their batches.
    async fn read_within_budget(
        &self,
        group: &[DataFile],
        progress: Option<&Progress>,
    ) -> Result<(Vec<DataFile>, Vec<Vec<RecordBatch>>)> {
        let budget = self.config.compaction.max_merge_bytes.as_u64();
        let mut taken = Vec::new();
        let mut decoded = Vec::new();
        let mut held = 0u64;
        let mut full = false;
        for file in group {
            if !full {
                let size = self.decoded_size(file).await?;
                if held + size > budget && size < budget / 2 {
                    full = true;
                } else if size < budget / 2 {
                    let data = self
                        .store
                        .get(&ObjectPath::from(file.path.as_str()))
                        .await?;
                    let path = file.path.clone();
                    decoded.push(
                        tokio::task::spawn_blocking(move || decode(&path, data))
                            .await
                            .expect("decoding does not panic")?,
                    );
                    taken.push(file.clone());
                    held += size;
                }
            }
            if let Some(progress) = progress {
                progress.file_done(file.bytes);
            }
        }
        if taken.len() < 2 {
            return Ok((Vec::new(), Vec::new()));
        }
        Ok((taken, decoded))
    }

    /// Merges the files `group` of one item table, project and day into one.
    async fn merge_items(
        &self,
        node: &str,
        table: &'static crate::items::ItemTable,
        group: &[DataFile],
    ) -> Result<Option<Merged>> {
        let (taken, decoded) = self.read_within_budget(group, None).await?;
        if taken.is_empty() {
            return Ok(None);
        }
        let group = taken.as_slice();
        let mut batches = Vec::new();
        for (file, decoded) in group.iter().zip(decoded) {
            // a file written before a column was added gets it, null
            let Some(adapted) = decoded
                .iter()
                .map(|b| table.adapt(b))
                .collect::<Option<Vec<_>>>()
            else {
                tracing::info!(path = %file.path, "item file of another layout; not merged");
                return Ok(None);
            };
            batches.extend(adapted);
        }
        let level = self.config.compaction.zstd_level;
        let outputs =
            crate::store::parquet::write_item_files(&self.store, table, &batches, level).await?;
        let inputs: HashSet<&str> = group.iter().map(|f| f.path.as_str()).collect();
        let now_ms = Utc::now().timestamp_millis();
        let edited = self
            .edit(node, |current| {
                let listed = current.tables.get(table.name)?;
                let live = listed
                    .iter()
                    .filter(|f| inputs.contains(f.path.as_str()))
                    .count();
                if live != inputs.len() {
                    return None;
                }
                let mut next = current.clone();
                let files = next.tables.entry(table.name.to_owned()).or_default();
                files.retain(|f| !inputs.contains(f.path.as_str()));
                files.extend(outputs.iter().cloned());
                next.retired.extend(group.iter().map(|f| Retired {
                    path: f.path.clone(),
                    project_id: f.project_id,
                    date: f.date.clone(),
                    since_ms: now_ms,
                }));
                Some(next)
            })
            .await?;
        if edited.is_none() {
            tracing::info!(
                node,
                table = table.name,
                "item inputs changed during compaction; discarding the merged file"
            );
            for file in &outputs {
                self.store
                    .delete(&ObjectPath::from(file.path.as_str()))
                    .await?;
            }
            return Ok(None);
        }
        self.retire_files(group.iter().map(|f| f.path.as_str()))
            .await;
        let output = outputs.first().map(|f| f.path.clone());
        tracing::info!(node, table = table.name, inputs = group.len(), output = ?output, "compacted item files");
        Ok(output.map(|output| Merged {
            output,
            inputs: group.len(),
            rows: group.iter().map(|f| f.rows).sum(),
        }))
    }

    /// Merges the rollup files `group` of one (project, day) into one, with new tag rollups.
    async fn merge_rollups(&self, node: &str, group: &[DataFile]) -> Result<Option<String>> {
        let mut batches = Vec::new();
        for file in group {
            let data = self
                .store
                .get(&ObjectPath::from(file.path.as_str()))
                .await?;
            let path = file.path.clone();
            let decoded = tokio::task::spawn_blocking(move || decode(&path, data))
                .await
                .expect("decoding does not panic")?;
            if decoded
                .iter()
                .any(|b| b.schema().fields() != crate::issues::rollup::schema().fields())
            {
                // A file of an earlier layout: left as it is (it is read as it was written).
                tracing::info!(path = %file.path, "rollup file of another layout; not merged");
                return Ok(None);
            }
            batches.extend(decoded);
        }
        let level = self.config.compaction.zstd_level;
        let failed = |source: crate::issues::Error| Error::TagRollups {
            path: group[0].path.clone(),
            source: Box::new(source),
        };
        let outputs = crate::issues::rollup::write(&self.store, &batches, level)
            .await
            .map_err(failed)?;
        let tags = crate::issues::tag_rollup::compute(&batches).map_err(failed)?;
        let tag_outputs = crate::issues::tag_rollup::write(&self.store, &tags, level, &outputs)
            .await
            .map_err(failed)?;
        let inputs: HashSet<&str> = group.iter().map(|f| f.path.as_str()).collect();
        let tag_inputs: HashSet<String> = group
            .iter()
            .filter_map(|f| keys::tag_rollup_of(&f.path))
            .collect();
        let now_ms = Utc::now().timestamp_millis();
        let mut retired_tags = Vec::new();
        let edited = self
            .edit(node, |current| {
                let live = current
                    .rollups
                    .iter()
                    .filter(|f| inputs.contains(f.path.as_str()))
                    .count();
                if live != inputs.len() {
                    return None;
                }
                let mut next = current.clone();
                next.rollups.retain(|f| !inputs.contains(f.path.as_str()));
                next.rollups.extend(outputs.iter().cloned());
                let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut next.tag_rollups)
                    .into_iter()
                    .partition(|f| tag_inputs.contains(&f.path));
                next.tag_rollups = kept;
                next.tag_rollups.extend(tag_outputs.iter().cloned());
                retired_tags = gone.iter().map(|f| f.path.clone()).collect();
                next.retired
                    .extend(group.iter().chain(&gone).map(|f| Retired {
                        path: f.path.clone(),
                        project_id: f.project_id,
                        date: f.date.clone(),
                        since_ms: now_ms,
                    }));
                Some(next)
            })
            .await?;
        let output = outputs.first().map(|f| f.path.clone());
        if edited.is_none() {
            tracing::info!(
                node,
                "rollup inputs changed during compaction; discarding the merged files"
            );
            for file in outputs.iter().chain(&tag_outputs) {
                self.store
                    .delete(&ObjectPath::from(file.path.as_str()))
                    .await?;
            }
            return Ok(None);
        }
        self.retire_files(
            group
                .iter()
                .map(|f| f.path.as_str())
                .chain(retired_tags.iter().map(String::as_str)),
        )
        .await;
        tracing::info!(node, inputs = group.len(), output = ?output, "compacted issue rollups");
        Ok(output)
    }

    async fn merge(
        &self,
        node: &str,
        group: &[DataFile],
        progress: Option<&Progress>,
    ) -> Result<Option<Merged>> {
        let (taken, decoded) = self.read_within_budget(group, progress).await?;
        if taken.is_empty() {
            return Ok(None);
        }
        let group = taken.as_slice();
        let batches: Vec<RecordBatch> = decoded.into_iter().flatten().collect();
        let level = self.config.compaction.zstd_level;
        let first = &group[0];
        let out_path = keys::event_file(
            first.project_id,
            &first.date,
            u32::from(first.hour),
            ulid::Ulid::new(),
        );
        let encoded = {
            let out_path = out_path.clone();
            tokio::task::spawn_blocking(move || -> Result<Vec<u8>> {
                // One project and hour: plan_partitions yields one partition, re-sorted.
                let mut data = Vec::new();
                for part in plan_partitions(&batches) {
                    data = encode(
                        &batches,
                        &part.rows,
                        writer_properties(level, part.rows.len(), COMPACTED_EVENT_PAGE_BYTES),
                    )
                    .map_err(|e| Error::Compact {
                        path: out_path.clone(),
                        message: e.to_string(),
                    })?;
                }
                Ok(data)
            })
            .await
            .expect("encoding does not panic")?
        };
        let output = DataFile {
            path: out_path.clone(),
            project_id: first.project_id,
            date: first.date.clone(),
            hour: first.hour,
            rows: group.iter().map(|f| f.rows).sum(),
            bytes: encoded.len() as u64,
            min_timestamp_ms: group.iter().map(|f| f.min_timestamp_ms).min().unwrap_or(0),
            max_timestamp_ms: group.iter().map(|f| f.max_timestamp_ms).max().unwrap_or(0),
        };
        let out_object = ObjectPath::from(out_path.as_str());
        self.store
            .put_durable(&out_object, Bytes::from(encoded))
            .await?;
        let inputs: HashSet<&str> = group.iter().map(|f| f.path.as_str()).collect();
        let now_ms = Utc::now().timestamp_millis();
        let edited = self
            .edit(node, |current| {
                let live = current
                    .files
                    .iter()
                    .filter(|f| inputs.contains(f.path.as_str()))
                    .count();
                if live != inputs.len() {
                    return None;
                }
                let mut next = current.clone();
                next.files.retain(|f| !inputs.contains(f.path.as_str()));
                next.files.push(output.clone());
                next.retired.extend(group.iter().map(|f| Retired {
                    path: f.path.clone(),
                    project_id: f.project_id,
                    date: f.date.clone(),
                    since_ms: now_ms,
                }));
                Some(next)
            })
            .await?;
        if edited.is_none() {
            tracing::info!(node, output = %out_path, "inputs changed during compaction; discarding the merged file");
            self.store.delete(&out_object).await?;
            return Ok(None);
        }
        // Out of the live prefix at once, so readers of the files themselves do not count the
        // inputs beside the merged file; queries planned with them still read them.
        self.retire_files(group.iter().map(|f| f.path.as_str()))
            .await;
        tracing::info!(node, inputs = group.len(), output = %out_path, "compacted");
        Ok(Some(Merged {
            output: out_path,
            inputs: group.len(),
            rows: group.iter().map(|f| f.rows).sum(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, hour: u8, bytes: u64) -> DataFile {
        DataFile {
            path: path.into(),
            project_id: 1,
            date: "2026-11-24".into(),
            hour,
            rows: 1,
            bytes,
            min_timestamp_ms: 0,
            max_timestamp_ms: 0,
        }
    }

    #[test]
    fn groups_small_files_per_partition_up_to_the_target() {
        let manifest = Manifest {
            files: vec![
                file("a", 1, 40),
                file("b", 1, 40),
                file("c", 1, 40),
                file("big", 1, 500),
                file("d", 1, 40),
                file("lonely", 2, 10),
            ],
            ..Manifest::default()
        };
        let groups: Vec<Vec<String>> = plan(&manifest, 100, 2)
            .into_iter()
            .map(|g| g.into_iter().map(|f| f.path).collect())
            .collect();
        assert_eq!(groups, [vec!["a", "b"], vec!["c", "d"]]);
        assert!(
            plan(&manifest, 100, 5).is_empty(),
            "hour 1 has 4 small files"
        );
    }
}
