//! The grouping and data scrubbing fields of a project as Sentry's project details API names
//! them, shared by `PUT /api/0/projects/{org}/{project}/` (projects.rs) and the declaration of
//! a project by the operator (registration.rs): parsed once, checked as a whole before
//! anything is written, so a refused change leaves the project as it was.

use faultline_protocol::scrub::ScrubSettings;
use serde::Deserialize;

use super::error::ApiError;
use crate::tenancy::{ProjectRules, Projects};

/// A change of settings; an absent field keeps the setting as it is.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct SettingsChange {
    #[serde(default)]
    grouping_enhancements: Option<String>,
    #[serde(default)]
    fingerprinting_rules: Option<String>,
    /// Sentry's "Data Scrubber".
    #[serde(default)]
    data_scrubber: Option<bool>,
    /// Sentry's "Use Default Scrubbers".
    #[serde(default)]
    data_scrubber_defaults: Option<bool>,
    #[serde(default)]
    sensitive_fields: Option<Vec<String>>,
    #[serde(default)]
    safe_fields: Option<Vec<String>>,
    #[serde(default, rename = "scrubIPAddresses")]
    scrub_ip_addresses: Option<bool>,
    /// Relay's PII config as JSON text; `null` or `""` clears the advanced rules.
    #[serde(default, deserialize_with = "some_nullable")]
    relay_pii_config: Option<Option<String>>,
}

/// A field that may be absent (`None`), `null` (`Some(None)`) or set.
fn some_nullable<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

/// The settings a change leads to, checked; `None` where the change leaves a part alone.
#[derive(Debug)]
pub(super) struct Checked {
    grouping: Option<ProjectRules>,
    privacy: Option<ScrubSettings>,
}

impl SettingsChange {
    pub(super) fn changes_grouping(&self) -> bool {
        self.grouping_enhancements.is_some() || self.fingerprinting_rules.is_some()
    }

    pub(super) fn changes_privacy(&self) -> bool {
        self.data_scrubber.is_some()
            || self.data_scrubber_defaults.is_some()
            || self.sensitive_fields.is_some()
            || self.safe_fields.is_some()
            || self.scrub_ip_addresses.is_some()
            || self.relay_pii_config.is_some()
    }

    /// The settings of project `name` (`id`, `None` when it is yet to be created) after this
    /// change, refused as a whole when any part would be: rules that do not parse or compile,
    /// or settings the config file declares. `grouping` asks for the grouping rules even when
    /// the change names none of their fields.
    pub(super) fn check(
        self,
        projects: &Projects,
        id: Option<u64>,
        name: &str,
        grouping: bool,
    ) -> Result<Checked, ApiError> {
        let grouping = (grouping || self.changes_grouping()).then(|| {
            let current = id.map(|id| projects.grouping_rules(id).0);
            let current = current.unwrap_or_default();
            ProjectRules {
                grouping_enhancements: self
                    .grouping_enhancements
                    .clone()
                    .unwrap_or(current.grouping_enhancements),
                fingerprinting_rules: self
                    .fingerprinting_rules
                    .clone()
                    .unwrap_or(current.fingerprinting_rules),
            }
        });
        let privacy = self.changes_privacy().then(|| {
            let current = id.map(|id| projects.privacy_settings(id).0);
            let mut privacy = current.unwrap_or_default();
            if let Some(on) = self.data_scrubber {
                privacy.scrub_data = on;
            }
            if let Some(on) = self.data_scrubber_defaults {
                privacy.scrub_defaults = on;
            }
            if let Some(fields) = self.sensitive_fields {
                privacy.sensitive_fields = fields;
            }
            if let Some(fields) = self.safe_fields {
                privacy.safe_fields = fields;
            }
            if let Some(on) = self.scrub_ip_addresses {
                privacy.scrub_ip_addresses = on;
            }
            if let Some(config) = self.relay_pii_config {
                privacy.pii_config = config.filter(|c| !c.trim().is_empty());
            }
            privacy
        });
        if let Some(rules) = &grouping {
            projects.check_grouping_rules(id, name, rules)?;
        }
        if let Some(settings) = &privacy {
            projects.check_privacy_settings(id, name, settings.clone())?;
        }
        Ok(Checked { grouping, privacy })
    }
}

impl Checked {
    /// Leaves out the parts equal to what project `id` has, so declaring the same state again
    /// writes nothing.
    pub(super) fn unchanged_left_out(self, projects: &Projects, id: u64) -> Self {
        Self {
            grouping: self
                .grouping
                .filter(|rules| *rules != projects.grouping_rules(id).0),
            privacy: self
                .privacy
                .filter(|settings| *settings != projects.privacy_settings(id).0),
        }
    }

    /// The declaration fields this change writes (after [`Self::unchanged_left_out`]: those
    /// that differ from what the project has).
    pub(super) fn changed_fields(&self) -> Vec<&'static str> {
        let mut changed = Vec::new();
        if self.grouping.is_some() {
            changed.push("groupingRules");
        }
        if self.privacy.is_some() {
            changed.push("privacy");
        }
        changed
    }

    /// Writes the checked settings of project `name` of `org`.
    pub(super) async fn apply(
        self,
        projects: &Projects,
        org: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        if let Some(settings) = self.privacy {
            projects.set_privacy_settings(org, name, settings).await?;
        }
        if let Some(rules) = self.grouping {
            projects.set_grouping_rules(org, name, rules).await?;
        }
        Ok(())
    }
}
