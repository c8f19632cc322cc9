//! Outgoing mail through an SMTP relay (`[smtp]`), with `lettre`: invites today, alerts later.
//!
//! A delivery that fails is reported to the caller (who still has the link to hand on), never
//! retried silently; the password is read from a file or the environment and never logged.

use std::time::Duration;

use faultline_config::{SmtpConfig, SmtpTls};
use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid [smtp] from address {from:?}: {message}")]
    From { from: String, message: String },
    #[error("invalid recipient address {to:?}: {message}")]
    To { to: String, message: String },
    #[error("cannot read the SMTP password file {path}: {source}")]
    PasswordFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up the SMTP connection to {host}: {message}")]
    Setup { host: String, message: String },
    #[error("cannot build the message: {0}")]
    Build(String),
    #[error("the mail server {host} did not take the message: {message}")]
    Send { host: String, message: String },
}

/// Sends mail through the configured relay.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    host: String,
}

impl Mailer {
    pub fn new(config: &SmtpConfig) -> Result<Self, Error> {
        let from: Mailbox = config.from.parse().map_err(|e| Error::From {
            from: config.from.clone(),
            message: format!("{e}"),
        })?;
        let setup = |e: lettre::transport::smtp::Error| Error::Setup {
            host: config.host.clone(),
            message: e.to_string(),
        };
        let builder = match config.tls {
            SmtpTls::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host).map_err(setup)?
            }
            SmtpTls::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host).map_err(setup)?
            }
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host),
        };
        let mut builder = builder
            .port(config.port.unwrap_or_else(|| config.tls.default_port()))
            .timeout(Some(config.timeout.max(Duration::from_secs(1))));
        if let Some(user) = &config.username {
            let password = match &config.password_file {
                Some(path) => std::fs::read_to_string(path)
                    .map(|p| p.trim_end_matches(['\r', '\n']).to_owned())
                    .map_err(|source| Error::PasswordFile {
                        path: path.clone(),
                        source,
                    })?,
                None => std::env::var("FAULTLINE_SMTP_PASSWORD").unwrap_or_default(),
            };
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(Self {
            transport: builder.build(),
            from,
            host: config.host.clone(),
        })
    }

    /// Sends a plain-text message to `to`.
    pub async fn send(&self, to: &str, subject: &str, body: String) -> Result<(), Error> {
        let to_box: Mailbox = to.parse().map_err(|e| Error::To {
            to: to.to_owned(),
            message: format!("{e}"),
        })?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to_box)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| Error::Build(e.to_string()))?;
        self.transport
            .send(message)
            .await
            .map(drop)
            .map_err(|e| Error::Send {
                host: self.host.clone(),
                message: e.to_string(),
            })
    }
}

/// The text of an invite mail.
pub fn invite_text(
    org: &str,
    by: &str,
    link: &str,
    expires: chrono::DateTime<chrono::Utc>,
) -> String {
    format!(
        "{by} invited you to the organization {org} on faultline, the error tracker.\n\n\
         Accept the invite and choose a password here:\n\n{link}\n\n\
         The link works once, until {} UTC. If you did not expect this, ignore this message.\n",
        expires.format("%Y-%m-%d %H:%M")
    )
}
