//! The `[alerts]` section: channels (where alerts go) and rules (when they go).
//!
//! Secrets (webhook URLs, routing keys, signing secrets) are never written in the file: each is
//! read from a file (`*_file`, the operator mounts one from a Secret) or an environment variable
//! (`*_env`), so neither the config dump nor the API ever shows one.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Alerting: `[[alerts.channels]]` and `[[alerts.rules]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Attempts per delivery before it is given up (the first one included).
    pub max_attempts: u32,
    /// Wait before the first retry; doubles with every further one, up to `max_backoff`.
    #[serde(with = "humantime_serde")]
    pub min_backoff: Duration,
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// How long one HTTP delivery may take.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// How often frequency rules are evaluated.
    #[serde(with = "humantime_serde")]
    pub check_interval: Duration,
    /// A delivery another node created and has not attempted for this long (the node is gone)
    /// is taken over by this one.
    #[serde(with = "humantime_serde")]
    pub takeover_after: Duration,
    /// Alerts a channel sends per hour at most, unless the channel sets its own
    /// `max_per_hour`; the ones beyond are recorded as `suppressed`. 0: no limit.
    pub max_per_hour: u32,
    /// Email: alerts for one recipient within this time of the last mail to them go out
    /// together, as one digest mail, when it has passed. The first alert after a quiet
    /// period is mailed at once.
    #[serde(with = "humantime_serde")]
    pub digest_window: Duration,
    /// Lets webhook-like channels (webhook, Slack, Discord, Teams, PagerDuty) post to loopback,
    /// private, link-local and other non-public addresses (and cloud metadata endpoints).
    /// Off by default: a channel's URL is checked when the channel is made and every address
    /// its host resolves to is checked again before each send.
    pub allow_private_targets: bool,
    /// Delivery records (outbox entries and their attempts) whose last attempt is older than
    /// this are deleted by the node running retention.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    pub channels: Vec<ChannelConfig>,
    pub rules: Vec<RuleConfig>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            min_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(3600),
            timeout: Duration::from_secs(10),
            check_interval: Duration::from_secs(10),
            takeover_after: Duration::from_secs(600),
            max_per_hour: 60,
            digest_window: Duration::from_secs(300),
            allow_private_targets: false,
            retention: Duration::from_secs(30 * 86_400),
            channels: Vec::new(),
            rules: Vec::new(),
        }
    }
}

impl AlertsConfig {
    /// True when nothing differs from the defaults (the section is left out of a dump).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// What kind of receiver a channel is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    /// Mail through `[smtp]` to `to`.
    Email,
    /// A Slack incoming webhook (Block Kit message).
    Slack,
    /// A Discord webhook (an embed).
    Discord,
    /// A Microsoft Teams Workflows webhook (an Adaptive Card).
    Teams,
    /// PagerDuty Events API v2: trigger, and resolve when the issue is resolved.
    Pagerduty,
    /// Any HTTP receiver, signed as Standard Webhooks do.
    Webhook,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Slack => "slack",
            Self::Discord => "discord",
            Self::Teams => "teams",
            Self::Pagerduty => "pagerduty",
            Self::Webhook => "webhook",
        }
    }
}

/// The body a generic webhook receives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// faultline's own JSON (documented in docs/alerts.md).
    #[default]
    Faultline,
    /// Sentry's issue-alert webhook body (`"action": "triggered"`), for receivers built for it.
    Sentry,
}

/// One place alerts are sent to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// Unique name rules refer to.
    pub name: String,
    pub kind: ChannelKind,
    /// Receiver URL (webhook and PagerDuty only; Slack, Discord and Teams URLs are secrets:
    /// use `url_file` or `url_env`). PagerDuty defaults to its Events API v2 endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A file holding the receiver URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_file: Option<PathBuf>,
    /// An environment variable holding the receiver URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_env: Option<String>,
    /// PagerDuty: a file (or environment variable) holding the integration's routing key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_key_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_key_env: Option<String>,
    /// Webhook: a file (or environment variable) holding the `whsec_...` signing secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    /// Webhook: the body's shape.
    #[serde(default)]
    pub format: WebhookFormat,
    /// Email: the recipients.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    /// Alerts this channel sends per hour at most (default `alerts.max_per_hour`); 0: no limit.
    /// PagerDuty resolves are never held back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_hour: Option<u32>,
}

/// What makes a rule fire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TriggerConfig {
    /// The first event of an issue.
    NewIssue,
    /// An event of an issue after it was resolved.
    Regression,
    /// More than `count` events of one issue within `window`.
    Frequency {
        count: u64,
        #[serde(with = "humantime_serde")]
        window: Duration,
    },
    /// An ignored issue whose ignore ran out (its date passed or it got the number of events
    /// it was ignored for) and that has an event since.
    Unmuted,
    /// More than `count` distinct users had events of one issue within `window`.
    Users {
        count: u64,
        #[serde(with = "humantime_serde")]
        window: Duration,
    },
    /// A cron monitor missed or failed a check-in (`monitors`: their slugs, empty: any).
    /// Accepted in the schema; it fires once cron check-ins are stored.
    CronMonitor {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        monitors: Vec<String>,
    },
}

/// When alerts go out, and where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Unique name (the rule's id in the API and in `alert_deliveries`).
    pub name: String,
    /// The organization whose projects the rule covers.
    #[serde(default = "default_org")]
    pub org: String,
    /// Project names; empty: every project of the organization.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub projects: Vec<String>,
    /// Any of these fires the rule.
    pub triggers: Vec<TriggerConfig>,
    /// Only events of these levels (empty: any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub levels: Vec<String>,
    /// Only events of these environments (empty: any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<String>,
    /// Only events of these releases (empty: any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub releases: Vec<String>,
    /// Only events with these tag values, each `key=value`: an event must carry, for every
    /// key listed, one of the values listed for it (empty: any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Only issues first seen at least this long ago.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde"
    )]
    pub issue_older_than: Option<Duration>,
    /// Only issues first seen less than this long ago.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde"
    )]
    pub issue_newer_than: Option<Duration>,
    /// Only issues with at least this many events in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_events: Option<u64>,
    /// Channel names.
    pub channels: Vec<String>,
    /// At most one alert per issue within this interval.
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub interval: Duration,
}

fn default_org() -> String {
    "default".to_owned()
}

fn default_interval() -> Duration {
    Duration::from_secs(30 * 60)
}

/// The levels events have, least severe first.
pub const LEVELS: [&str; 5] = ["debug", "info", "warning", "error", "fatal"];

impl AlertsConfig {
    /// Checks names, references and the secret sources; the error names the field.
    pub fn check(&self) -> Result<(), (String, String)> {
        let mut names = std::collections::BTreeSet::new();
        for (i, channel) in self.channels.iter().enumerate() {
            let field = |name: &str| format!("alerts.channels[{i}].{name}");
            check_channel(channel).map_err(|(f, m)| (field(&f), m))?;
            if !names.insert(channel.name.as_str()) {
                return Err((field("name"), format!("{:?} is used twice", channel.name)));
            }
        }
        let mut rules = std::collections::BTreeSet::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let field = |name: &str| format!("alerts.rules[{i}].{name}");
            check_rule(rule, |c| names.contains(c)).map_err(|(f, m)| (field(&f), m))?;
            if !rules.insert(rule.name.as_str()) {
                return Err((field("name"), format!("{:?} is used twice", rule.name)));
            }
        }
        for (field, value) in [
            ("alerts.min_backoff", self.min_backoff),
            ("alerts.max_backoff", self.max_backoff),
            ("alerts.timeout", self.timeout),
            ("alerts.check_interval", self.check_interval),
            ("alerts.takeover_after", self.takeover_after),
            ("alerts.digest_window", self.digest_window),
            ("alerts.retention", self.retention),
        ] {
            if value.is_zero() {
                return Err((field.to_owned(), "must be longer than zero".to_owned()));
            }
        }
        if self.max_attempts == 0 {
            return Err((
                "alerts.max_attempts".to_owned(),
                "must be at least 1".to_owned(),
            ));
        }
        Ok(())
    }
}

fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

/// Checks one channel; the error is (field, message).
pub fn check_channel(channel: &ChannelConfig) -> Result<(), (String, String)> {
    check_channel_stored(channel, StoredSecrets::default())
}

/// Which secrets of a channel made through the server are stored by it (write-only) instead of
/// named by file or environment variable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoredSecrets {
    pub url: bool,
    pub routing_key: bool,
}

/// [`check_channel`] for a channel whose URL or routing key may be stored by the server.
pub fn check_channel_stored(
    channel: &ChannelConfig,
    stored: StoredSecrets,
) -> Result<(), (String, String)> {
    let err = |f: &str, m: &str| Err((f.to_owned(), m.to_owned()));
    if !is_name(&channel.name) {
        return err("name", "must be 1-64 letters, digits, '-', '_' or '.'");
    }
    let url_secret = channel.url_file.is_some() || channel.url_env.is_some() || stored.url;
    if channel.url_file.is_some() && channel.url_env.is_some() {
        return err("url_file", "give url_file or url_env, not both");
    }
    match channel.kind {
        ChannelKind::Email => {
            if channel.to.is_empty() {
                return err("to", "an email channel needs at least one recipient");
            }
        }
        ChannelKind::Slack | ChannelKind::Discord | ChannelKind::Teams => {
            if channel.url.is_some() {
                return err(
                    "url",
                    "this webhook URL is a secret: give it with url_file or url_env",
                );
            }
            if !url_secret {
                return err("url_file", "required (or url_env)");
            }
        }
        ChannelKind::Pagerduty => {
            if channel.routing_key_file.is_none()
                && channel.routing_key_env.is_none()
                && !stored.routing_key
            {
                return err("routing_key_file", "required (or routing_key_env)");
            }
        }
        ChannelKind::Webhook => {
            if channel.url.is_none() && !url_secret {
                return err("url", "required (or url_file or url_env)");
            }
        }
    }
    if let Some(url) = &channel.url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return err("url", "must start with http:// or https://");
    }
    Ok(())
}

/// A rule's tag filter `key=value` as (key, value); `None` when it is not of that shape.
pub fn parse_tag(filter: &str) -> Option<(&str, &str)> {
    let (key, value) = filter.split_once('=')?;
    let key = key.trim();
    (!key.is_empty() && key.len() <= 200).then_some((key, value.trim()))
}

/// Checks one rule; `channel_exists` tells whether a channel name is declared.
pub fn check_rule(
    rule: &RuleConfig,
    channel_exists: impl Fn(&str) -> bool,
) -> Result<(), (String, String)> {
    let err = |f: &str, m: String| Err((f.to_owned(), m));
    if !is_name(&rule.name) {
        return err(
            "name",
            "must be 1-64 letters, digits, '-', '_' or '.'".to_owned(),
        );
    }
    if rule.triggers.is_empty() {
        return err("triggers", "at least one trigger is needed".to_owned());
    }
    for trigger in &rule.triggers {
        let (name, count, window) = match trigger {
            TriggerConfig::Frequency { count, window } => ("frequency", count, window),
            TriggerConfig::Users { count, window } => ("users", count, window),
            _ => continue,
        };
        if *count == 0 || window.is_zero() {
            return err(
                "triggers",
                format!("a {name} trigger needs a count and a window above zero"),
            );
        }
    }
    if rule.channels.is_empty() {
        return err("channels", "at least one channel is needed".to_owned());
    }
    if let Some(missing) = rule.channels.iter().find(|c| !channel_exists(c)) {
        return err("channels", format!("no channel is named {missing:?}"));
    }
    if let Some(level) = rule.levels.iter().find(|l| !LEVELS.contains(&l.as_str())) {
        return err(
            "levels",
            format!("{level:?} is not one of {}", LEVELS.join(", ")),
        );
    }
    if let Some(tag) = rule.tags.iter().find(|t| parse_tag(t).is_none()) {
        return err(
            "tags",
            format!("{tag:?} is not key=value (a key of 1-200 characters)"),
        );
    }
    if let (Some(older), Some(newer)) = (rule.issue_older_than, rule.issue_newer_than)
        && older >= newer
    {
        return err(
            "issue_older_than",
            "must be shorter than issue_newer_than, or no issue can match".to_owned(),
        );
    }
    if rule.interval.is_zero() {
        return err("interval", "must be longer than zero".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::Config;

    const CHANNEL: &str = "[[alerts.channels]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"https://example.test/h\"\n";

    #[test]
    fn rules_and_channels_parse_with_defaults() {
        let config = Config::parse(&format!(
            "{CHANNEL}\n[[alerts.rules]]\nname = \"r\"\nchannels = [\"hook\"]\n\
             triggers = [{{ type = \"new_issue\" }}, {{ type = \"frequency\", count = 100, window = \"5m\" }}]\n"
        ))
        .unwrap();
        let rule = &config.alerts.rules[0];
        assert_eq!(rule.org, "default");
        assert_eq!(rule.interval, std::time::Duration::from_secs(1800));
        assert_eq!(
            rule.triggers[1],
            super::TriggerConfig::Frequency {
                count: 100,
                window: std::time::Duration::from_secs(300)
            }
        );
        assert_eq!(config.alerts.max_attempts, 8);
        assert!(Config::parse("").unwrap().alerts.is_default());
        // The defaults of the anti-flood, SSRF and retention settings.
        assert_eq!(config.alerts.max_per_hour, 60);
        assert_eq!(
            config.alerts.digest_window,
            std::time::Duration::from_secs(300)
        );
        assert!(!config.alerts.allow_private_targets);
        assert_eq!(
            config.alerts.retention,
            std::time::Duration::from_secs(30 * 86_400)
        );
        assert_eq!(config.alerts.channels[0].max_per_hour, None);
        // A rule without the newer filters reads with none of them.
        assert!(rule.releases.is_empty() && rule.tags.is_empty());
        assert_eq!(
            (
                rule.issue_older_than,
                rule.issue_newer_than,
                rule.min_events
            ),
            (None, None, None)
        );
    }

    #[test]
    fn newer_triggers_and_filters_parse() {
        let config = Config::parse(&format!(
            "{CHANNEL}max_per_hour = 5\n\n[[alerts.rules]]\nname = \"r\"\nchannels = [\"hook\"]\n\
             releases = [\"shop@1.2\"]\ntags = [\"browser=Firefox\", \"region = eu\"]\n\
             issue_older_than = \"1h\"\nissue_newer_than = \"7d\"\nmin_events = 10\n\
             triggers = [{{ type = \"unmuted\" }}, {{ type = \"users\", count = 3, window = \"10m\" }}, \
             {{ type = \"cron_monitor\", monitors = [\"nightly\"] }}]\n"
        ))
        .unwrap();
        let rule = &config.alerts.rules[0];
        assert_eq!(config.alerts.channels[0].max_per_hour, Some(5));
        assert_eq!(rule.triggers[0], super::TriggerConfig::Unmuted);
        assert_eq!(
            rule.triggers[1],
            super::TriggerConfig::Users {
                count: 3,
                window: std::time::Duration::from_secs(600)
            }
        );
        assert_eq!(
            rule.triggers[2],
            super::TriggerConfig::CronMonitor {
                monitors: vec!["nightly".to_owned()]
            }
        );
        assert_eq!(rule.releases, ["shop@1.2"]);
        assert_eq!(super::parse_tag(&rule.tags[1]), Some(("region", "eu")));
        assert_eq!(
            rule.issue_older_than,
            Some(std::time::Duration::from_secs(3600))
        );
        assert_eq!(rule.min_events, Some(10));
    }

    #[test]
    fn bad_alerts_name_the_field() {
        let cases = [
            (
                "[[alerts.channels]]\nname = \"s\"\nkind = \"slack\"\nurl = \"https://hooks.slack.com/x\"".to_owned(),
                "alerts.channels[0].url",
                "secret",
            ),
            (
                "[[alerts.channels]]\nname = \"p\"\nkind = \"pagerduty\"".to_owned(),
                "alerts.channels[0].routing_key_file",
                "required",
            ),
            (
                "[[alerts.channels]]\nname = \"m\"\nkind = \"email\"".to_owned(),
                "alerts.channels[0].to",
                "recipient",
            ),
            (
                format!("{CHANNEL}{CHANNEL}"),
                "alerts.channels[1].name",
                "used twice",
            ),
            (
                format!("{CHANNEL}[[alerts.rules]]\nname = \"r\"\nchannels = [\"nope\"]\ntriggers = [{{ type = \"new_issue\" }}]"),
                "alerts.rules[0].channels",
                "no channel is named \"nope\"",
            ),
            (
                format!("{CHANNEL}[[alerts.rules]]\nname = \"r\"\nchannels = [\"hook\"]\ntriggers = []"),
                "alerts.rules[0].triggers",
                "at least one",
            ),
            (
                format!("{CHANNEL}[[alerts.rules]]\nname = \"r\"\nchannels = [\"hook\"]\nlevels = [\"critical\"]\ntriggers = [{{ type = \"regression\" }}]"),
                "alerts.rules[0].levels",
                "\"critical\" is not one of debug, info, warning, error, fatal",
            ),
            (
                format!("{CHANNEL}[[alerts.rules]]\nname = \"r\"\nchannels = [\"hook\"]\ntriggers = [{{ type = \"frequency\", count = 0, window = \"1m\" }}]"),
                "alerts.rules[0].triggers",
                "above zero",
            ),
            ("[alerts]\nmax_attempts = 0".to_owned(), "alerts.max_attempts", "at least 1"),
            (
                format!("{CHANNEL}[[alerts.rules]]\nname = \"r\"\nchannels = [\"hook\"]\ntriggers = [{{ type = \"users\", count = 0, window = \"1h\" }}]"),
                "alerts.rules[0].triggers",
                "a users trigger needs a count and a window above zero",
            ),
            (
                format!("{CHANNEL}[[alerts.rules]]\nname = \"r\"\nchannels = [\"hook\"]\ntags = [\"browser\"]\ntriggers = [{{ type = \"new_issue\" }}]"),
                "alerts.rules[0].tags",
                "\"browser\" is not key=value",
            ),
            (
                format!("{CHANNEL}[[alerts.rules]]\nname = \"r\"\nchannels = [\"hook\"]\nissue_older_than = \"2d\"\nissue_newer_than = \"1d\"\ntriggers = [{{ type = \"new_issue\" }}]"),
                "alerts.rules[0].issue_older_than",
                "shorter than issue_newer_than",
            ),
            ("[alerts]\nretention = \"0s\"".to_owned(), "alerts.retention", "longer than zero"),
        ];
        for (text, field, words) in cases {
            let message = Config::parse(&text).unwrap_err().to_string();
            assert!(
                message.contains(field) && message.contains(words),
                "{text}: {message}"
            );
        }
    }
}
