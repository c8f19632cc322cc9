//! What each `faultline` subcommand does.

use std::io::Write;

use faultline_config::Config;
use tokio_util::sync::CancellationToken;

use crate::cli::{Cli, Command, IssueCommand, ProjectCommand, TokenCommand, public_url};
use crate::issues::{self, Change};
use crate::query::ProjectFilter;
use crate::query::format::{self, Format};
use crate::store::Store;
use crate::tenancy::{NewToken, Projects, Tokens};
use crate::{node, query, server, tenancy};

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
    Issues(#[from] issues::Error),
    #[error("request to {url} failed: {message}")]
    Remote { url: String, message: String },
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
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
        Command::Project(ProjectCommand::Create {
            name,
            org,
            public_url: url,
        }) => {
            let projects = Projects::load(Store::open(&config)?, &config).await?;
            let project = projects.create(&name, &org).await?;
            eprintln!(
                "created project {:?} of organization {:?} with id {}",
                project.name, project.org, project.id
            );
            println!("{}", project.dsn(&public_url(&config, url.as_deref())));
        }
        Command::Project(ProjectCommand::List { public_url: url }) => {
            let projects = Projects::load(Store::open(&config)?, &config).await?;
            let base = public_url(&config, url.as_deref());
            for project in projects.list().await? {
                println!("{}\t{}\t{}", project.id, project.name, project.dsn(&base));
            }
        }
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
            let (token, record) = tokens
                .create(NewToken {
                    name,
                    org,
                    scopes,
                    projects,
                })
                .await?;
            eprintln!(
                "created API token {:?} (id {}); it is shown only this once",
                record.name, record.id
            );
            println!("{token}");
        }
        Command::Token(TokenCommand::List { org }) => {
            let tokens = Tokens::new(Store::open(&config)?, None)?;
            for record in tokens.list(org.as_deref()).await? {
                let scopes: Vec<_> = record.scopes.iter().map(|s| s.as_str()).collect();
                let projects = match &record.projects {
                    None => "*".to_owned(),
                    Some(ids) => ids.iter().map(u64::to_string).collect::<Vec<_>>().join(","),
                };
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
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
            eprintln!("revoked API token {:?} (id {})", record.name, record.id);
        }
        Command::Issue(command) => {
            let (issue_id, change) = match command {
                IssueCommand::Resolve { issue_id } => (issue_id, Change::Resolve),
                IssueCommand::Reopen { issue_id } => (issue_id, Change::Reopen),
                IssueCommand::Ignore {
                    issue_id,
                    until,
                    count,
                } => (issue_id, Change::Ignore { until, count }),
            };
            let service = node::open_reader(&config).await?;
            let output =
                issues::change(&service, &ProjectFilter::All, issue_id, change, "cli").await?;
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
    // The server renders tables itself only as JSON/CSV/Arrow; ask for JSON and print as is.
    let wire = if format == Format::Table {
        Format::Json
    } else {
        format
    };
    let wire_name = match wire {
        Format::Csv => "csv",
        Format::Arrow => "arrow",
        _ => "json",
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
    Ok(body.to_vec())
}
