//! What each `faultline` subcommand does.

use std::io::Write;

use faultline_config::Config;
use tokio_util::sync::CancellationToken;

use crate::backup::{self, DESTINATION_LEASE, Destination};
use crate::cli::{
    BackupCommand, Cli, Command, CompactCommand, DsnAddress, IssueCommand, KeyCommand, ListFormat,
    ProjectCommand, QuarantineCommand, RetentionCommand, TokenCommand, UserCommand, WalCommand,
    public_url,
};
use crate::issues::{self, Change};
use crate::maintenance::{self, Maintenance};
use crate::query::format::{self, Format};
use crate::query::{ProjectFilter, QueryOutput};
use crate::store::Store;
use crate::tenancy::projects::dsn;
use crate::tenancy::{KeyInfo, KeyUpdate, NewToken, Projects, Scope, Tokens};
use crate::{node, query, server, tenancy, wal};
use datafusion::arrow::ipc::reader::StreamReader;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] faultline_config::Error),
    #[error(transparent)]
    Server(#[from] server::Error),
    #[error(transparent)]
    Node(#[from] node::Error),
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error(transparent)]
    Tenancy(#[from] tenancy::Error),
    #[error(transparent)]
    Query(#[from] query::Error),
    #[error(transparent)]
    Maintenance(#[from] maintenance::Error),
    #[error(transparent)]
    Backup(#[from] backup::Error),
    #[error(transparent)]
    Issues(#[from] issues::Error),
    #[error("request to {url} failed: {message}")]
    Remote { url: String, message: String },
    #[error(transparent)]
    Wal(#[from] crate::wal::Error),
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
    #[error(transparent)]
    People(#[from] crate::people::Error),
    #[error(transparent)]
    Mail(#[from] crate::mail::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs the parsed command line; `shutdown` stops a server.
pub async fn run(cli: Cli, shutdown: CancellationToken) -> Result<()> {
    let mut config = cli.global.config()?;
    match cli.command {
        Command::Serve {
            listen,
            admin_listen,
            pg_listen,
            flight_listen,
        } => {
            if pg_listen.is_some() {
                config.server.pg_listen = pg_listen;
            }
            if flight_listen.is_some() {
                config.server.flight_listen = flight_listen;
            }
            if let Some(listen) = listen {
                config.server.listen = listen;
            }
            if admin_listen.is_some() {
                config.server.admin_listen = admin_listen;
            }
            server::run(config, shutdown).await?;
        }
        Command::Config => print!("{}", config.to_toml()),
        Command::Project(ProjectCommand::Create { name, org, address }) => {
            let projects = Projects::load(Store::open(&config)?, &config).await?;
            let project = projects.create(&name, &org).await?;
            let (base, origin) = public_url(&config, &address);
            eprintln!(
                "created project {:?} of organization {:?} with id {}",
                project.name, project.org, project.id
            );
            eprintln!("{origin}");
            println!("{}", project.dsn(&base).unwrap_or_default());
        }
        Command::Project(ProjectCommand::List { address }) => {
            let projects = Projects::load(Store::open(&config)?, &config).await?;
            let (base, origin) = public_url(&config, &address);
            eprintln!("{origin}");
            for project in projects.list().await? {
                let dsn = project
                    .dsn(&base)
                    .unwrap_or_else(|| "(no active key)".to_owned());
                println!("{}\t{}\t{}", project.id, project.name, dsn);
            }
        }
        Command::Key(command) => run_key(&config, command).await?,
        Command::User(command) => run_user(&config, command).await?,
        Command::Token(TokenCommand::Create {
            name,
            org,
            scopes,
            projects: names,
        }) => {
            let store = Store::open(&config)?;
            let projects = if names.is_empty() {
                None
            } else {
                let all = Projects::load(store.clone(), &config).await?;
                Some(all.ids_by_name(&org, &names).await?)
            };
            let tokens = Tokens::new(store, None)?;
            let scopes = Scope::expand_all(&scopes)?;
            let (token, record) = tokens
                .create(NewToken {
                    name,
                    org,
                    scopes,
                    projects,
                    owner: None,
                })
                .await?;
            eprintln!(
                "created API token {:?} (id {}); it is shown only this once",
                record.name, record.id
            );
            println!("{token}");
            cli_audit(
                &config,
                &record.org,
                "api-key.create",
                ("token", &record.id),
                serde_json::json!({"name": record.name, "scopes": record.scopes, "projects": record.projects}),
            )
            .await?;
        }
        Command::Token(TokenCommand::List { org }) => {
            let tokens = Tokens::new(Store::open(&config)?, None)?;
            for record in tokens.list(org.as_deref()).await? {
                let scopes: Vec<_> = record.scopes.iter().map(|s| s.as_str()).collect();
                let projects = match &record.projects {
                    None => "*".to_owned(),
                    Some(ids) => ids.iter().map(u64::to_string).collect::<Vec<_>>().join(","),
                };
                // a person's own token names its person (user id) in a last column
                let owner = record
                    .owner
                    .as_deref()
                    .map(|id| format!("\tuser:{id}"))
                    .unwrap_or_default();
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}{owner}",
                    record.id,
                    record.org,
                    record.name,
                    scopes.join(","),
                    projects,
                    record.created.to_rfc3339()
                );
            }
        }
        Command::Token(TokenCommand::Revoke { id }) => {
            let tokens = Tokens::new(Store::open(&config)?, None)?;
            let record = tokens.revoke(None, &id).await?;
            cli_audit(
                &config,
                &record.org,
                "api-key.remove",
                ("token", &record.id),
                serde_json::json!({"name": record.name}),
            )
            .await?;
            eprintln!("revoked API token {:?} (id {})", record.name, record.id);
        }
        Command::Issue(IssueCommand::Delete { issue_id }) => {
            let service = node::open_reader(&config).await?;
            let deletion = issues::delete(&service, &ProjectFilter::All, issue_id, "cli").await?;
            let projects = Projects::load(Store::open(&config)?, &config).await?;
            let org = projects
                .list()
                .await?
                .into_iter()
                .find(|p| p.id == deletion.project_id)
                .map_or_else(|| tenancy::DEFAULT_ORG.to_owned(), |p| p.org.clone());
            cli_audit(
                &config,
                &org,
                "issue.delete",
                ("issue", &issue_id.to_string()),
                serde_json::json!({ "issues": deletion.issues }),
            )
            .await?;
            eprintln!(
                "deleted issue(s) {:?}; the server's maintenance erases their events shortly",
                deletion.issues
            );
        }
        Command::Issue(command) => {
            let (issue_id, change) = match command {
                IssueCommand::Resolve { issue_id } => (issue_id, Change::Resolve),
                IssueCommand::Reopen { issue_id } => (issue_id, Change::Reopen),
                IssueCommand::Merge { issue_id, into } => (issue_id, Change::Merge { into }),
                IssueCommand::Unmerge { issue_id } => (issue_id, Change::Unmerge),
                IssueCommand::Delete { .. } => unreachable!("handled above"),
                IssueCommand::Ignore {
                    issue_id,
                    until,
                    count,
                } => (issue_id, Change::Ignore { until, count }),
            };
            let event = change.audit_event();
            let service = node::open_reader(&config).await?;
            let output =
                issues::change(&service, &ProjectFilter::All, issue_id, change, "cli").await?;
            let rows: serde_json::Value =
                serde_json::from_slice(&format::encode(&output, Format::Json)?).unwrap_or_default();
            let project_id = rows[0]["project_id"].as_u64();
            let projects = Projects::load(Store::open(&config)?, &config).await?;
            let org = projects
                .list()
                .await?
                .into_iter()
                .find(|p| Some(p.id) == project_id)
                .map_or_else(|| tenancy::DEFAULT_ORG.to_owned(), |p| p.org.clone());
            cli_audit(
                &config,
                &org,
                event,
                ("issue", &issue_id.to_string()),
                serde_json::json!({}),
            )
            .await?;
            std::io::stdout().write_all(&format::encode(&output, Format::Table)?)?;
        }
        Command::Query {
            sql,
            format,
            server,
            token,
        } => {
            let bytes = match server {
                Some(url) => remote_query(&url, token.as_deref(), &sql, format).await?,
                None => local_query(&config, &sql, format).await?,
            };
            std::io::stdout().write_all(&bytes)?;
        }
        Command::Retention(RetentionCommand::Run { dry_run }) => {
            let maintenance = Maintenance::new(config.clone(), Store::open(&config)?, None);
            let report = maintenance.retention(dry_run).await?;
            let verb = if dry_run { "would drop" } else { "dropped" };
            for d in &report.dropped {
                println!(
                    "{verb}\t{}\t{}\t{} files\t{} events\t{}",
                    d.project, d.date, d.files, d.events, d.reason
                );
            }
            eprintln!(
                "{} partitions {verb}; {} objects deleted",
                report.dropped.len(),
                report.deleted
            );
        }
        Command::Compact(CompactCommand::Run { dry_run }) => {
            let maintenance = Maintenance::new(config.clone(), Store::open(&config)?, None);
            let report = maintenance.compact(dry_run, true).await?;
            let (rows, summary) = compaction_output(&report);
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(rows.as_bytes())?;
            stdout.flush()?;
            drop(stdout);
            eprintln!("{summary}");
        }
        Command::Backup(command) => run_backup(&config, command).await?,
        Command::Wal(WalCommand::Quarantine(command)) => run_quarantine(&config, command)?,
    }
    Ok(())
}

/// What `faultline compact run` prints: one line per merge on stdout (tab-separated: node,
/// partition, files, events, merged file or "dry run"; for issue rollups and item tables: node,
/// `rollups` or the table's name and the project and day, files, rows, merged file) and a
/// summary line for stderr.
fn compaction_output(report: &maintenance::compaction::CompactionReport) -> (String, String) {
    let mut rows = String::new();
    for m in &report.merged {
        let output = match (&m.output, report.dry_run) {
            (_, true) => "dry run",
            (Some(path), false) => path.as_str(),
            (None, false) => "skipped: inputs changed",
        };
        rows.push_str(&if m.kind != "events" {
            format!(
                "{}\t{} proj={}/date={}\t{} files\t{} rows\t{output}\n",
                m.node, m.kind, m.project_id, m.date, m.inputs, m.rows,
            )
        } else {
            format!(
                "{}\tproj={}/date={}/hour={:02}\t{} files\t{} events\t{output}\n",
                m.node, m.project_id, m.date, m.hour, m.inputs, m.rows,
            )
        });
    }
    let n = report.merged.len();
    let merges = if n == 1 { "merge" } else { "merges" };
    let summary = if report.dry_run {
        format!("dry run: {n} {merges} planned; nothing was changed")
    } else {
        let done = report.merged.iter().filter(|m| m.output.is_some()).count();
        format!("{done} of {n} {merges} done")
    };
    (rows, summary)
}

/// One key as a line: public key, state, label, limit, source, DSN.
fn key_line(key: &KeyInfo, base: &str) -> String {
    let limit = key
        .rate_limit
        .as_ref()
        .map(|l| format!("{}/{}", l.events, humantime::format_duration(l.window)))
        .unwrap_or_else(|| "-".to_owned());
    let state = if key.enabled { "active" } else { "disabled" };
    format!(
        "{}\t{state}\t{}\t{limit}\t{}\t{}",
        key.public,
        key.label.as_deref().unwrap_or("-"),
        match key.source {
            tenancy::KeySource::Config => "config",
            tenancy::KeySource::Store => "store",
        },
        dsn(base, &key.public, key.project_id)
    )
}

/// Records a change made with the command line in the audit log (actor `system`).
async fn cli_audit(
    config: &Config,
    org: &str,
    event: &str,
    (target_type, target_id): (&str, &str),
    data: serde_json::Value,
) -> Result<()> {
    let people = crate::people::People::new(Store::open(config)?, config.auth.clone());
    people
        .audit
        .record(crate::people::AuditEntry {
            ts: people.audit.now(),
            org: org.to_owned(),
            actor_type: "system".to_owned(),
            actor_id: None,
            actor_label: Some("faultline (command line)".to_owned()),
            ip: None,
            user_agent: None,
            event: event.to_owned(),
            target_type: Some(target_type.to_owned()),
            target_id: Some(target_id.to_owned()),
            data,
        })
        .await;
    Ok(())
}

/// The base URL people open (the UI and API): `server.public_url`, else the query listener.
fn people_url(config: &Config, address: &crate::cli::DsnAddress) -> String {
    if address.public_url.is_none()
        && config.server.public_url.is_none()
        && let Some(admin) = config.server.admin_listen
    {
        return format!("http://{admin}");
    }
    public_url(config, address).0
}

async fn run_user(config: &Config, command: UserCommand) -> Result<()> {
    use crate::people::{AuditEntry, OrgRole, People};
    let people = People::new(Store::open(config)?, config.auth.clone());
    let audit = |org: &str, event: &str, target: &str, data: serde_json::Value| AuditEntry {
        ts: people.audit.now(),
        org: org.to_owned(),
        actor_type: "system".to_owned(),
        actor_id: None,
        actor_label: Some("faultline user (command line)".to_owned()),
        ip: None,
        user_agent: None,
        event: event.to_owned(),
        target_type: Some("user".to_owned()),
        target_id: Some(target.to_owned()),
        data,
    };
    let by_email = |email: String| {
        let people = &people;
        async move {
            people
                .user_by_email(&email)
                .await?
                .ok_or(crate::people::Error::UnknownUser { id: email })
        }
    };
    match command {
        UserCommand::Create {
            email,
            owner,
            role,
            name,
            org,
            address,
        } => {
            let role = if owner { OrgRole::Owner } else { role.parse()? };
            let name = name.unwrap_or_else(|| email.clone());
            let user = people.create_user(&email, &name, &org, role, None).await?;
            let token = people.create_link(Some(&user.id)).await?;
            people
                .audit
                .record(audit(
                    &org,
                    "member.add",
                    &user.id,
                    serde_json::json!({"email": user.email, "role": role}),
                ))
                .await;
            eprintln!(
                "created {} {} of organization {:?}; set its password within {} at:",
                role,
                user.email,
                user.org,
                humantime::format_duration(config.auth.setup_link_ttl)
            );
            println!(
                "{}/setup/{token}",
                people_url(config, &address).trim_end_matches('/')
            );
        }
        UserCommand::List { org } => {
            let mut table = comfy_table::Table::new();
            table.load_preset(comfy_table::presets::NOTHING);
            table.set_header(["ID", "EMAIL", "NAME", "ORG", "ROLE", "STATUS", "MFA"]);
            for user in people.users(org.as_deref()).await? {
                let status = if user.disabled {
                    "disabled"
                } else if user.password.is_none() {
                    "no password yet"
                } else {
                    "active"
                };
                table.add_row([
                    user.id,
                    user.email,
                    user.name,
                    user.org,
                    user.role.to_string(),
                    status.to_owned(),
                    if user.totp.is_some() { "totp" } else { "-" }.to_owned(),
                ]);
            }
            println!("{table}");
        }
        UserCommand::Disable { email } => {
            let user = by_email(email).await?;
            let user = people.set_disabled(&user.org, &user.id, true).await?;
            people
                .audit
                .record(audit(
                    &user.org,
                    "member.disable",
                    &user.id,
                    serde_json::json!({"email": user.email}),
                ))
                .await;
            eprintln!("disabled {}; its sessions have ended", user.email);
        }
        UserCommand::Enable { email } => {
            let user = by_email(email).await?;
            let user = people.set_disabled(&user.org, &user.id, false).await?;
            people
                .audit
                .record(audit(
                    &user.org,
                    "member.enable",
                    &user.id,
                    serde_json::json!({"email": user.email}),
                ))
                .await;
            eprintln!("enabled {}", user.email);
        }
        UserCommand::Invite {
            email,
            role,
            teams,
            org,
            address,
        } => {
            let role: OrgRole = role.parse()?;
            let (token, record) = people
                .invite(&org, &email, role, teams, "faultline user invite")
                .await?;
            people
                .audit
                .record(audit(
                    &org,
                    "member.invite",
                    &record.email,
                    serde_json::json!({"email": record.email, "role": role, "teams": record.teams}),
                ))
                .await;
            eprintln!(
                "invited {} as {} of organization {:?}; the link works until {}:",
                record.email, record.role, record.org, record.expires
            );
            let link = format!(
                "{}/accept/{token}",
                people_url(config, &address).trim_end_matches('/')
            );
            println!("{link}");
            if let Some(smtp) = &config.smtp {
                let text =
                    crate::mail::invite_text(&org, "An administrator", &link, record.expires);
                let subject = format!("You are invited to {org} on faultline");
                match crate::mail::Mailer::new(smtp)?
                    .send(&record.email, &subject, text)
                    .await
                {
                    Ok(()) => eprintln!("the invite was mailed to {}", record.email),
                    Err(err) => eprintln!("the invite was not mailed ({err}); hand on the link"),
                }
            }
        }
    }
    Ok(())
}

async fn run_key(config: &Config, command: KeyCommand) -> Result<()> {
    let projects = Projects::load(Store::open(config)?, config).await?;
    let print_dsn = |key: &KeyInfo, address: &DsnAddress| {
        let (base, origin) = public_url(config, address);
        eprintln!("{origin}");
        println!("{}", dsn(&base, &key.public, key.project_id));
    };
    let toggle = |enabled| KeyUpdate {
        enabled: Some(enabled),
        ..KeyUpdate::default()
    };
    match command {
        KeyCommand::List { project, address } => {
            let (base, origin) = public_url(config, &address);
            eprintln!("{origin}");
            for key in projects.keys(&project.org, &project.project).await? {
                println!("{}", key_line(&key, &base));
            }
        }
        KeyCommand::Create {
            project,
            label,
            rate_limit,
            address,
        } => {
            let key = projects
                .create_key(&project.org, &project.project, label, rate_limit)
                .await?;
            eprintln!(
                "created DSN key {} of project {:?}",
                key.public, key.project
            );
            print_dsn(&key, &address);
        }
        KeyCommand::Rotate {
            key,
            project,
            address,
        } => {
            let new = projects
                .rotate_key(&project.org, &project.project, &key)
                .await?;
            eprintln!(
                "created DSN key {} of project {:?}; {key} keeps working until you run \
                 `faultline key disable {key} --project {}` once every SDK uses the new DSN",
                new.public, new.project, new.project
            );
            print_dsn(&new, &address);
        }
        KeyCommand::Disable { key, project } => {
            let key = projects
                .update_key(&project.org, &project.project, &key, toggle(false))
                .await?;
            eprintln!(
                "disabled DSN key {} of project {:?}: events sent with it are refused (401); \
                 running servers pick this up within {} s",
                key.public,
                key.project,
                tenancy::projects::REFRESH_INTERVAL.as_secs()
            );
        }
        KeyCommand::Enable { key, project } => {
            let key = projects
                .update_key(&project.org, &project.project, &key, toggle(true))
                .await?;
            eprintln!(
                "enabled DSN key {} of project {:?}",
                key.public, key.project
            );
        }
        KeyCommand::Update {
            key,
            project,
            label,
            rate_limit,
            no_rate_limit,
        } => {
            let update = KeyUpdate {
                enabled: None,
                label,
                rate_limit: if no_rate_limit {
                    Some(None)
                } else {
                    rate_limit.map(Some)
                },
            };
            let key = projects
                .update_key(&project.org, &project.project, &key, update)
                .await?;
            println!(
                "{}",
                key_line(&key, &public_url(config, &DsnAddress::default()).0)
            );
        }
        KeyCommand::Delete { key, project } => {
            let key = projects
                .delete_key(&project.org, &project.project, &key)
                .await?;
            eprintln!(
                "deleted DSN key {} of project {:?}; events sent with it are refused (401)",
                key.public, key.project
            );
        }
    }
    Ok(())
}

fn cli_holder(config: &Config) -> String {
    format!(
        "cli-{}-{}-{:04x}",
        config.storage.node_id,
        std::process::id(),
        rand::random::<u16>()
    )
}

/// How long a CLI backup or prune waits for the destination lease.
const CLI_LEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

async fn run_backup(config: &Config, command: BackupCommand) -> Result<()> {
    match command {
        BackupCommand::Create { to } => {
            let dest = Destination::open(config, to.as_deref())?;
            let store = Store::open(config)?;
            let wal_dir = config.wal_dir();
            let source = backup::Source {
                store: &store,
                node: &config.storage.node_id,
                wal_dir: &wal_dir,
            };
            let id = backup::new_id(chrono::Utc::now());
            let record = backup::with_lease(
                &dest.store,
                DESTINATION_LEASE,
                &cli_holder(config),
                CLI_LEASE_WAIT,
                backup::create(&id, &source, &dest, true),
            )
            .await?;
            eprintln!(
                "backup {} at {}: {} files, {} bytes ({} files copied)",
                record.id,
                dest.url,
                record.total_files(),
                record.total_bytes(),
                record.copied_files
            );
            println!("{}", record.id);
        }
        BackupCommand::List { from, format } => {
            let dest = Destination::open(config, from.as_deref())?;
            let records = dest.records().await?;
            match format {
                ListFormat::Json => {
                    let rows: Vec<_> = records
                        .iter()
                        .map(|r| {
                            serde_json::json!({
                                "id": r.id, "started": r.started, "finished": r.finished,
                                "files": r.total_files(), "bytes": r.total_bytes(),
                                "copied_files": r.copied_files, "copied_bytes": r.copied_bytes,
                                "source": r.source, "counts": r.counts,
                            })
                        })
                        .collect();
                    println!("{}", serde_json::Value::Array(rows));
                }
                ListFormat::Table => {
                    let mut table = comfy_table::Table::new();
                    table.load_preset(comfy_table::presets::NOTHING);
                    table.set_header(["ID", "FINISHED", "FILES", "BYTES", "EVENTS"]);
                    for r in &records {
                        let events: u64 = r.counts.iter().map(|c| c.events).sum();
                        table.add_row([
                            r.id.clone(),
                            r.finished.to_rfc3339(),
                            r.total_files().to_string(),
                            r.total_bytes().to_string(),
                            events.to_string(),
                        ]);
                    }
                    println!("{table}");
                }
            }
        }
        BackupCommand::Verify { id, from } => {
            let dest = Destination::open(config, from.as_deref())?;
            let report = backup::verify(&dest, &id, true).await?;
            println!(
                "backup {} is intact: {} objects, {} bytes checked",
                report.id, report.objects, report.bytes
            );
        }
        BackupCommand::Restore { id, from, until } => {
            let dest = Destination::open(config, from.as_deref())?;
            let until = until.map(|t| t.with_timezone(&chrono::Utc));
            match backup::restore::restore(config, &dest, &id, until, true).await? {
                backup::restore::RestoreOutcome::AlreadyRestored(marker) => println!(
                    "already restored: backup {} from {} (finished {})",
                    marker.backup_id, marker.source, marker.finished
                ),
                backup::restore::RestoreOutcome::Restored {
                    marker,
                    files,
                    events,
                    counts,
                } => {
                    println!(
                        "restored backup {} from {}: {files} files, {events} events, counts per project and day verified",
                        marker.backup_id, marker.source
                    );
                    for c in counts {
                        eprintln!("  project {} {}: {} events", c.project_id, c.date, c.events);
                    }
                }
            }
        }
        BackupCommand::Prune { dry_run } => {
            let dest = Destination::open(config, None)?;
            let keep = &config.backup;
            let report = backup::with_lease(
                &dest.store,
                DESTINATION_LEASE,
                &cli_holder(config),
                CLI_LEASE_WAIT,
                backup::prune(&dest, keep.keep_last, keep.keep_days, dry_run),
            )
            .await?;
            let verb = if dry_run { "would remove" } else { "removed" };
            for id in &report.removed {
                println!("{verb}\t{id}");
            }
            eprintln!(
                "{} kept, {} {verb}, {} objects deleted",
                report.kept.len(),
                report.removed.len(),
                report.deleted_objects
            );
        }
    }
    Ok(())
}

fn run_quarantine(config: &Config, command: QuarantineCommand) -> Result<()> {
    let wal_dir = config.wal_dir();
    match command {
        QuarantineCommand::List { format } => {
            let entries = wal::quarantine::list(&wal_dir)?;
            match format {
                ListFormat::Json => {
                    let json = serde_json::to_string(&entries).map_err(std::io::Error::from)?;
                    println!("{json}");
                }
                ListFormat::Table if entries.is_empty() => {
                    println!("no quarantined WAL records");
                }
                ListFormat::Table => {
                    let mut table = comfy_table::Table::new();
                    table.load_preset(comfy_table::presets::NOTHING);
                    table.set_header(["ID", "PROJECT", "RECEIVED", "BYTES", "REASON"]);
                    for q in &entries {
                        let received = chrono::DateTime::from_timestamp_millis(q.received_ms)
                            .map(|t| t.to_rfc3339())
                            .unwrap_or_default();
                        table.add_row([
                            q.id.clone(),
                            format!("{} ({})", q.project, q.project_id),
                            received,
                            q.event_bytes.to_string(),
                            q.reason.clone(),
                        ]);
                    }
                    println!("{table}");
                }
            }
        }
        QuarantineCommand::Show { id } => {
            let (entry, record) = wal::quarantine::show(&wal_dir, &id)?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "id:          {}", entry.id)?;
            writeln!(out, "segment:     {}", entry.segment)?;
            writeln!(out, "offset:      {}", entry.offset)?;
            writeln!(out, "project:     {} ({})", entry.project, entry.project_id)?;
            writeln!(out, "issue:       {}", entry.issue_id)?;
            writeln!(out, "quarantined: {}", entry.quarantined_at.to_rfc3339())?;
            writeln!(out, "reason:      {}", entry.reason)?;
            writeln!(out, "event ({} bytes):", record.json.len())?;
            out.write_all(&record.json)?;
            writeln!(out)?;
        }
    }
    Ok(())
}

async fn local_query(config: &Config, sql: &str, format: Format) -> Result<Vec<u8>> {
    let service = node::open_reader(config).await?;
    // Whoever can read the data directory can read every file in it anyway.
    let output = service.run(&ProjectFilter::All, sql).await?;
    Ok(format::encode(&output, format)?)
}

async fn remote_query(
    base: &str,
    token: Option<&str>,
    sql: &str,
    format: Format,
) -> Result<Vec<u8>> {
    let url = format!("{}/api/sql", base.trim_end_matches('/'));
    let remote = |message: String| Error::Remote {
        url: url.clone(),
        message,
    };
    // For a table, fetch Arrow and render it here, as a local query would.
    let wire_name = match format {
        Format::Json => "json",
        Format::Csv => "csv",
        Format::Arrow | Format::Table => "arrow",
    };
    let mut request = reqwest::Client::new()
        .post(&url)
        .query(&[("format", wire_name)])
        .json(&serde_json::json!({ "sql": sql }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(|e| remote(e.to_string()))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| remote(e.to_string()))?;
    if !status.is_success() {
        return Err(remote(format!(
            "{status}: {}",
            String::from_utf8_lossy(&body).trim()
        )));
    }
    if format != Format::Table {
        return Ok(body.to_vec());
    }
    let reader = StreamReader::try_new(std::io::Cursor::new(body), None)
        .map_err(|e| remote(format!("the Arrow result does not decode: {e}")))?;
    let schema = reader.schema();
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| remote(format!("the Arrow result does not decode: {e}")))?;
    Ok(format::encode(
        &QueryOutput { schema, batches },
        Format::Table,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maintenance::compaction::{CompactionReport, Merge};

    fn merge(output: Option<&str>) -> Merge {
        Merge {
            kind: "events",
            node: "node-0".into(),
            project_id: 1,
            date: "2026-12-04".into(),
            hour: 7,
            inputs: 3,
            rows: 12,
            output: output.map(str::to_owned),
        }
    }

    #[test]
    fn compaction_output_keeps_rows_and_summary_on_lines_of_their_own() {
        let dry = CompactionReport {
            dry_run: true,
            merged: vec![merge(None)],
        };
        let (rows, summary) = compaction_output(&dry);
        assert_eq!(
            rows,
            "node-0\tproj=1/date=2026-12-04/hour=07\t3 files\t12 events\tdry run\n"
        );
        assert_eq!(summary, "dry run: 1 merge planned; nothing was changed");

        let done = CompactionReport {
            dry_run: false,
            merged: vec![merge(Some("events/x.parquet")), merge(None)],
        };
        let (rows, summary) = compaction_output(&done);
        let lines: Vec<_> = rows.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].ends_with("\tevents/x.parquet"), "{rows}");
        assert!(lines[1].ends_with("\tskipped: inputs changed"), "{rows}");
        assert_eq!(summary, "1 of 2 merges done");

        let (rows, summary) = compaction_output(&CompactionReport {
            dry_run: true,
            merged: Vec::new(),
        });
        assert_eq!(
            (rows.as_str(), summary.as_str()),
            ("", "dry run: 0 merges planned; nothing was changed")
        );
    }
}
