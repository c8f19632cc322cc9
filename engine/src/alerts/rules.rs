//! Rules and channels as the engine uses them: the config's declarations with their secrets
//! read, and the matching of a rule against an issue's event.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use faultline_config::{AlertsConfig, ChannelConfig, ChannelKind, RuleConfig, TriggerConfig};
use serde::Serialize;

use super::declared::ChannelSecrets;
use super::{Error, Result};

/// What made a rule fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    NewIssue,
    Regression,
    Frequency,
    /// An ignored issue whose ignore ran out got an event.
    Unmuted,
    /// More than N distinct users within a window.
    Users,
    /// The issue was resolved (PagerDuty channels close their incident).
    Resolved,
    /// "Send test notification".
    Test,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NewIssue => "new_issue",
            Self::Regression => "regression",
            Self::Frequency => "frequency",
            Self::Unmuted => "unmuted",
            Self::Users => "users",
            Self::Resolved => "resolved",
            Self::Test => "test",
        }
    }

    /// The sentence a message starts with.
    pub fn headline(self) -> &'static str {
        match self {
            Self::NewIssue => "New issue",
            Self::Regression => "Regression",
            Self::Frequency => "Frequent issue",
            Self::Unmuted => "Ignored issue is back",
            Self::Users => "Issue affecting many users",
            Self::Resolved => "Resolved",
            Self::Test => "Test notification",
        }
    }
}

/// A secret read from its file or environment variable, never shown.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

fn read_secret(
    channel: &str,
    field: &str,
    file: Option<&std::path::Path>,
    env: Option<&str>,
) -> Result<Option<Secret>> {
    let missing = |message: String| Error::Secret {
        channel: channel.to_owned(),
        field: field.to_owned(),
        message,
    };
    let value = match (file, env) {
        (Some(path), _) => std::fs::read_to_string(path)
            .map_err(|e| missing(format!("cannot read {}: {e}", path.display())))?,
        (None, Some(var)) => std::env::var(var)
            .map_err(|_| missing(format!("environment variable {var} is not set")))?,
        (None, None) => return Ok(None),
    };
    let value = value.trim().to_owned();
    if value.is_empty() {
        return Err(missing("is empty".to_owned()));
    }
    Ok(Some(Secret(value)))
}

/// The PagerDuty Events API v2 endpoint.
pub const PAGERDUTY_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// A channel ready to send: its declaration and its secrets.
#[derive(Debug, Clone)]
pub struct Channel {
    pub config: ChannelConfig,
    /// Where HTTP channels post (empty for email).
    pub url: Option<Secret>,
    pub routing_key: Option<Secret>,
    pub signing_secret: Option<Secret>,
    /// Which secrets the server stores for it (typed in once): `url`, `routing_key`,
    /// `signing_secret`.
    pub stored: Vec<&'static str>,
}

impl Channel {
    pub fn load(config: &ChannelConfig) -> Result<Self> {
        Self::load_with(config, None)
    }

    /// A channel made through the server: a secret it was given (and the server stored) is
    /// used where the declaration names no file or environment variable.
    pub fn load_with(config: &ChannelConfig, stored: Option<&ChannelSecrets>) -> Result<Self> {
        let name = &config.name;
        let stored_value = |pick: fn(&ChannelSecrets) -> &Option<String>| {
            stored.and_then(|s| pick(s).clone()).map(Secret)
        };
        let url = match read_secret(
            name,
            "url",
            config.url_file.as_deref(),
            config.url_env.as_deref(),
        )? {
            Some(url) => Some(url),
            None => stored_value(|s| &s.url)
                .or_else(|| config.url.clone().map(Secret))
                .or_else(|| {
                    (config.kind == ChannelKind::Pagerduty)
                        .then(|| Secret(PAGERDUTY_URL.to_owned()))
                }),
        };
        if let Some(url) = &url
            && !(url.0.starts_with("http://") || url.0.starts_with("https://"))
        {
            return Err(Error::Secret {
                channel: name.clone(),
                field: "url".to_owned(),
                message: "must start with http:// or https://".to_owned(),
            });
        }
        Ok(Self {
            config: config.clone(),
            url,
            routing_key: read_secret(
                name,
                "routing_key",
                config.routing_key_file.as_deref(),
                config.routing_key_env.as_deref(),
            )?
            .or_else(|| stored_value(|s| &s.routing_key)),
            signing_secret: read_secret(
                name,
                "secret",
                config.secret_file.as_deref(),
                config.secret_env.as_deref(),
            )?
            .or_else(|| stored_value(|s| &s.signing_secret)),
            stored: stored.map(ChannelSecrets::names).unwrap_or_default(),
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn kind(&self) -> ChannelKind {
        self.config.kind
    }
}

/// What an event (and its issue) tells a rule's filters.
#[derive(Debug, Clone, Copy)]
pub struct EventFacts<'a> {
    pub org: &'a str,
    pub project: &'a str,
    pub level: &'a str,
    pub environment: Option<&'a str>,
    pub release: Option<&'a str>,
    /// The event's tags.
    pub tags: &'a [(String, String)],
    /// When the issue was first seen (ms); unknown: the age filters let it through.
    pub first_seen_ms: Option<i64>,
    /// The issue's events in all; unknown: counts as one.
    pub event_count: Option<u64>,
    /// Now (ms), for the age filters.
    pub now_ms: i64,
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// True when `tags` carries, for every key the filters name, one of the values named for it.
pub fn tags_match(filters: &[String], tags: &[(String, String)]) -> bool {
    let mut wanted: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (key, value) in filters
        .iter()
        .filter_map(|f| faultline_config::parse_tag(f))
    {
        wanted.entry(key).or_default().push(value);
    }
    wanted.iter().all(|(key, values)| {
        tags.iter()
            .any(|(k, v)| k == key && values.iter().any(|want| want == v))
    })
}

/// The rule's tag filters grouped by key: (key, values), for a query.
pub fn tag_filters(rule: &RuleConfig) -> BTreeMap<String, Vec<String>> {
    let mut wanted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, value) in rule
        .tags
        .iter()
        .filter_map(|f| faultline_config::parse_tag(f))
    {
        wanted
            .entry(key.to_owned())
            .or_default()
            .push(value.to_owned());
    }
    wanted
}

/// True when `rule` covers the event's project and its filters let the event through.
pub fn matches(rule: &RuleConfig, facts: &EventFacts<'_>) -> bool {
    let listed = |list: &[String], value: Option<&str>| {
        list.is_empty() || value.is_some_and(|v| list.iter().any(|l| l == v))
    };
    let age = facts.first_seen_ms.map(|first| facts.now_ms - first);
    rule.org == facts.org
        && (rule.projects.is_empty() || rule.projects.iter().any(|p| p == facts.project))
        && listed(&rule.levels, Some(facts.level))
        && listed(&rule.environments, facts.environment)
        && listed(&rule.releases, facts.release)
        && tags_match(&rule.tags, facts.tags)
        && rule
            .issue_older_than
            .is_none_or(|min| age.is_none_or(|age| age >= millis(min)))
        && rule
            .issue_newer_than
            .is_none_or(|max| age.is_none_or(|age| age < millis(max)))
        && rule
            .min_events
            .is_none_or(|min| facts.event_count.unwrap_or(1) >= min)
}

/// True when `rule` fires on `trigger` (a frequency trigger is matched by its timer).
pub fn has_trigger(rule: &RuleConfig, trigger: Trigger) -> bool {
    rule.triggers.iter().any(|t| {
        matches!(
            (t, trigger),
            (TriggerConfig::NewIssue, Trigger::NewIssue)
                | (TriggerConfig::Regression, Trigger::Regression)
                | (TriggerConfig::Frequency { .. }, Trigger::Frequency)
                | (TriggerConfig::Unmuted, Trigger::Unmuted)
                | (TriggerConfig::Users { .. }, Trigger::Users)
        )
    })
}

/// The frequency trigger of a rule: (more than this many events, in this window).
pub fn frequency(rule: &RuleConfig) -> Option<(u64, Duration)> {
    rule.triggers.iter().find_map(|t| match t {
        TriggerConfig::Frequency { count, window } => Some((*count, *window)),
        _ => None,
    })
}

/// The distinct-users trigger of a rule: (more than this many users, in this window).
pub fn users(rule: &RuleConfig) -> Option<(u64, Duration)> {
    rule.triggers.iter().find_map(|t| match t {
        TriggerConfig::Users { count, window } => Some((*count, *window)),
        _ => None,
    })
}

/// Every rule and channel in force.
#[derive(Debug, Clone, Default)]
pub struct Ruleset {
    pub rules: Vec<RuleConfig>,
    pub channels: BTreeMap<String, Arc<Channel>>,
}

impl Ruleset {
    /// Builds the set from the config, reading every secret (a missing one is an error naming
    /// the channel and field).
    pub fn load(config: &AlertsConfig) -> Result<Self> {
        let mut channels = BTreeMap::new();
        for channel in &config.channels {
            channels.insert(channel.name.clone(), Arc::new(Channel::load(channel)?));
        }
        Ok(Self {
            rules: config.rules.clone(),
            channels,
        })
    }

    /// The config file's rules and channels plus those made through the API (the config
    /// file's win a name clash). A channel whose secret cannot be read now is left out, and
    /// logged; rules that name it skip it.
    pub fn assemble(
        config: &AlertsConfig,
        api_channels: Vec<ChannelConfig>,
        api_rules: Vec<RuleConfig>,
        secrets: &HashMap<String, ChannelSecrets>,
    ) -> Self {
        let mut channels = BTreeMap::new();
        let declared = config.channels.iter().cloned();
        let made = api_channels
            .into_iter()
            .filter(|c| !config.channels.iter().any(|d| d.name == c.name));
        for channel in declared.chain(made) {
            // Only a channel made through the server has stored secrets.
            let stored = if config.channels.iter().any(|d| d.name == channel.name) {
                None
            } else {
                secrets.get(&channel.name)
            };
            match Channel::load_with(&channel, stored) {
                Ok(loaded) => {
                    channels.insert(channel.name.clone(), Arc::new(loaded));
                }
                Err(err) => tracing::warn!(cause = %err, "alert channel left out"),
            }
        }
        let mut rules = config.rules.clone();
        rules.extend(
            api_rules
                .into_iter()
                .filter(|r| !config.rules.iter().any(|d| d.name == r.name)),
        );
        Self { rules, channels }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Channels of `rule` (declared ones only: the config check guarantees all are).
    pub fn channels_of<'a>(
        &'a self,
        rule: &'a RuleConfig,
    ) -> impl Iterator<Item = &'a Arc<Channel>> {
        rule.channels
            .iter()
            .filter_map(|name| self.channels.get(name))
    }
}

/// Anti-flood: may a rule fire for an issue now, given when (and on what) it last fired?
/// A firing of the same decision (`trigger_key`) never suppresses itself, so a replay of a
/// decision goes through.
pub fn throttled(
    last: Option<(i64, &str)>,
    now_ms: i64,
    interval: Duration,
    trigger_key: &str,
) -> bool {
    let interval_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
    match last {
        Some((_, key)) if key == trigger_key => false,
        Some((at, _)) => now_ms.saturating_sub(at) < interval_ms,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(value: serde_json::Value) -> RuleConfig {
        serde_json::from_value(value).unwrap()
    }

    fn facts(project: &str) -> EventFacts<'_> {
        EventFacts {
            org: "default",
            project,
            level: "error",
            environment: None,
            release: None,
            tags: &[],
            first_seen_ms: None,
            event_count: None,
            now_ms: 10 * 86_400_000,
        }
    }

    fn with_filters(filters: serde_json::Value) -> RuleConfig {
        let mut value = serde_json::json!({
            "name": "r", "channels": ["c"], "triggers": [{"type": "new_issue"}],
        });
        for (k, v) in filters.as_object().unwrap() {
            value[k] = v.clone();
        }
        rule(value)
    }

    #[test]
    fn the_release_filter_lets_only_listed_releases_through() {
        let r = with_filters(serde_json::json!({"releases": ["shop@1.2", "shop@1.3"]}));
        let release = |release| EventFacts {
            release,
            ..facts("api")
        };
        assert!(matches(&r, &release(Some("shop@1.3"))));
        assert!(!matches(&r, &release(Some("shop@1.4"))));
        assert!(!matches(&r, &release(None)), "no release is no match");
        assert!(matches(
            &with_filters(serde_json::json!({})),
            &release(None)
        ));
    }

    #[test]
    fn the_tag_filter_needs_every_key_with_one_of_its_values() {
        let r = with_filters(serde_json::json!({
            "tags": ["browser=Firefox", "browser=Chrome", "region=eu"],
        }));
        let tags = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let check = |pairs: &[(&str, &str)]| {
            let tags = tags(pairs);
            matches(
                &r,
                &EventFacts {
                    tags: &tags,
                    ..facts("api")
                },
            )
        };
        assert!(check(&[("region", "eu"), ("browser", "Chrome")]));
        assert!(check(&[
            ("browser", "Firefox"),
            ("region", "eu"),
            ("os", "x")
        ]));
        assert!(!check(&[("browser", "Safari"), ("region", "eu")]));
        assert!(!check(&[("browser", "Firefox")]), "region is missing");
        assert!(!check(&[("region", "Firefox"), ("browser", "eu")]));
        assert!(!check(&[]));
        assert_eq!(
            tag_filters(&r).get("browser").map(Vec::len),
            Some(2),
            "grouped by key for the window queries"
        );
    }

    #[test]
    fn the_age_filters_compare_the_issues_first_seen_with_now() {
        let hour = 3_600_000;
        let older = with_filters(serde_json::json!({"issue_older_than": "1h"}));
        let newer = with_filters(serde_json::json!({"issue_newer_than": "1h"}));
        let first_seen = |age: i64| {
            let base = facts("api");
            EventFacts {
                first_seen_ms: Some(base.now_ms - age),
                ..base
            }
        };
        // At exactly one hour the issue is older than 1h, no longer newer than 1h.
        assert!(matches(&older, &first_seen(hour)));
        assert!(!matches(&older, &first_seen(hour - 1)));
        assert!(!matches(&newer, &first_seen(hour)));
        assert!(matches(&newer, &first_seen(hour - 1)));
        assert!(matches(&newer, &first_seen(0)));
    }

    #[test]
    fn the_event_count_filter_needs_at_least_that_many_events() {
        let r = with_filters(serde_json::json!({"min_events": 10}));
        let count = |event_count| EventFacts {
            event_count,
            ..facts("api")
        };
        assert!(matches(&r, &count(Some(10))));
        assert!(matches(&r, &count(Some(11))));
        assert!(!matches(&r, &count(Some(9))));
        assert!(!matches(&r, &count(None)), "unknown counts as one event");
    }

    #[test]
    fn the_newer_triggers_are_matched_by_their_kind() {
        let r = rule(serde_json::json!({
            "name": "r", "channels": ["c"],
            "triggers": [{"type": "unmuted"}, {"type": "users", "count": 5, "window": "1h"},
                         {"type": "cron_monitor"}],
        }));
        assert!(has_trigger(&r, Trigger::Unmuted));
        assert!(has_trigger(&r, Trigger::Users));
        assert!(!has_trigger(&r, Trigger::NewIssue));
        assert!(!has_trigger(&r, Trigger::Frequency));
        assert_eq!(users(&r), Some((5, Duration::from_secs(3600))));
        assert_eq!(frequency(&r), None);
    }

    #[test]
    fn filters_match_project_level_and_environment() {
        let r = rule(serde_json::json!({
            "name": "r",
            "projects": ["api"],
            "levels": ["error", "fatal"],
            "environments": ["production"],
            "channels": ["c"],
            "triggers": [{"type": "new_issue"}],
        }));
        let facts = EventFacts {
            environment: Some("production"),
            ..facts("api")
        };
        assert!(matches(&r, &facts));
        assert!(!matches(
            &r,
            &EventFacts {
                project: "web",
                ..facts
            }
        ));
        assert!(!matches(
            &r,
            &EventFacts {
                level: "warning",
                ..facts
            }
        ));
        assert!(!matches(
            &r,
            &EventFacts {
                environment: None,
                ..facts
            }
        ));
        assert!(!matches(
            &r,
            &EventFacts {
                environment: Some("staging"),
                ..facts
            }
        ));
        assert!(!matches(
            &r,
            &EventFacts {
                org: "other",
                ..facts
            }
        ));
        let any = rule(serde_json::json!({
            "name": "r",
            "channels": ["c"],
            "triggers": [{"type": "regression"}, {"type": "frequency", "count": 10, "window": "5m"}],
        }));
        assert!(matches(
            &any,
            &EventFacts {
                level: "debug",
                ..super::tests::facts("web")
            }
        ));
        assert!(has_trigger(&any, Trigger::Regression));
        assert!(!has_trigger(&any, Trigger::NewIssue));
        assert_eq!(frequency(&any), Some((10, Duration::from_secs(300))));
        assert_eq!(frequency(&r), None);
    }

    #[test]
    fn one_alert_per_rule_and_issue_per_interval() {
        let thirty = Duration::from_secs(30 * 60);
        let minute = 60_000;
        assert!(!throttled(None, 0, thirty, "new"));
        // 29:59 after a firing of another decision: suppressed; 30:00 after: allowed.
        assert!(throttled(
            Some((0, "new")),
            30 * minute - 1,
            thirty,
            "regression:5"
        ));
        assert!(!throttled(
            Some((0, "new")),
            30 * minute,
            thirty,
            "regression:5"
        ));
        // The same decision again (a replay) is not a second alert.
        assert!(!throttled(Some((0, "new")), 1, thirty, "new"));
    }

    #[test]
    fn secrets_come_from_files_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("url");
        std::fs::write(&file, "https://hooks.example/x\n").unwrap();
        let config: ChannelConfig = serde_json::from_value(serde_json::json!({
            "name": "s", "kind": "slack", "url_file": file,
        }))
        .unwrap();
        let channel = Channel::load(&config).unwrap();
        assert_eq!(
            channel.url.as_ref().unwrap().expose(),
            "https://hooks.example/x"
        );
        assert_eq!(format!("{:?}", channel.url), "Some(Secret(..))");
        let missing: ChannelConfig = serde_json::from_value(serde_json::json!({
            "name": "p", "kind": "pagerduty", "routing_key_env": "FAULTLINE_TEST_UNSET_KEY",
        }))
        .unwrap();
        let err = Channel::load(&missing).unwrap_err().to_string();
        assert!(
            err.contains("channel p") && err.contains("routing_key"),
            "{err}"
        );
        assert!(err.contains("FAULTLINE_TEST_UNSET_KEY"), "{err}");
    }
}
