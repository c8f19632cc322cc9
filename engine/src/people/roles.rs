//! Sentry's organization roles (member, admin, manager, owner) and team roles (contributor,
//! admin), and the scopes each grants. A person holds the union of their organization role's
//! scopes and those of their team roles.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::Error;
use crate::tenancy::{ALL_SCOPES, Scope};

/// A role in the organization, from least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrgRole {
    /// Sees and acts on events of their teams' projects.
    Member,
    /// Also manages projects and teams.
    Admin,
    /// Also manages membership and every team.
    Manager,
    /// Everything, including the audit log and making owners.
    Owner,
}

/// A role in a team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TeamRole {
    Contributor,
    Admin,
}

use Scope::*;

const MEMBER: &[Scope] = &[
    EventRead,
    EventWrite,
    EventAdmin,
    ProjectRead,
    ProjectReleases,
    OrgRead,
    MemberRead,
    TeamRead,
    AlertsRead,
];

const ADMIN: &[Scope] = &[
    EventRead,
    EventWrite,
    EventAdmin,
    OrgRead,
    MemberRead,
    ProjectRead,
    ProjectWrite,
    ProjectAdmin,
    ProjectReleases,
    TeamRead,
    TeamWrite,
    TeamAdmin,
    AlertsRead,
    AlertsWrite,
];

const MANAGER_EXTRA: &[Scope] = &[MemberWrite, MemberAdmin, OrgWrite];

const CONTRIBUTOR: &[Scope] = &[
    EventRead,
    EventWrite,
    ProjectRead,
    ProjectReleases,
    OrgRead,
    MemberRead,
    TeamRead,
    AlertsRead,
];

const TEAM_ADMIN_EXTRA: &[Scope] = &[
    ProjectWrite,
    ProjectAdmin,
    TeamWrite,
    TeamAdmin,
    EventAdmin,
    AlertsWrite,
];

impl OrgRole {
    pub const ALL: [Self; 4] = [Self::Member, Self::Admin, Self::Manager, Self::Owner];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Admin => "admin",
            Self::Manager => "manager",
            Self::Owner => "owner",
        }
    }

    /// The scopes this role grants on its own.
    pub fn scopes(self) -> Vec<Scope> {
        match self {
            Self::Member => MEMBER.to_vec(),
            Self::Admin => ADMIN.to_vec(),
            Self::Manager => ADMIN.iter().chain(MANAGER_EXTRA).copied().collect(),
            Self::Owner => ALL_SCOPES.to_vec(),
        }
    }

    /// True if the role reaches every project of the organization without joining teams
    /// (members do too when the organization has open membership).
    pub fn sees_all_projects(self, open_membership: bool) -> bool {
        match self {
            Self::Member => open_membership,
            Self::Admin | Self::Manager | Self::Owner => true,
        }
    }
}

impl TeamRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Contributor => "contributor",
            Self::Admin => "admin",
        }
    }

    pub fn scopes(self) -> Vec<Scope> {
        match self {
            Self::Contributor => CONTRIBUTOR.to_vec(),
            Self::Admin => CONTRIBUTOR
                .iter()
                .chain(TEAM_ADMIN_EXTRA)
                .copied()
                .collect(),
        }
    }
}

/// The union of an organization role's scopes and team roles' scopes, sorted.
pub fn union(org: OrgRole, teams: impl IntoIterator<Item = TeamRole>) -> Vec<Scope> {
    let mut scopes = org.scopes();
    for team in teams {
        scopes.extend(team.scopes());
    }
    scopes.sort();
    scopes.dedup();
    scopes
}

impl fmt::Display for OrgRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for TeamRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrgRole {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| Error::InvalidRole {
                role: s.to_owned(),
                expected: "member, admin, manager or owner",
            })
    }
}

impl FromStr for TeamRole {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "contributor" => Ok(Self::Contributor),
            "admin" => Ok(Self::Admin),
            other => Err(Error::InvalidRole {
                role: other.to_owned(),
                expected: "contributor or admin",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_grow_and_teams_add_to_the_organization_role() {
        let member = union(OrgRole::Member, []);
        assert!(member.contains(&EventRead) && member.contains(&EventWrite));
        assert!(!member.contains(&ProjectWrite) && !member.contains(&MemberWrite));
        let member_team_admin = union(OrgRole::Member, [TeamRole::Contributor, TeamRole::Admin]);
        assert!(member_team_admin.contains(&ProjectWrite));
        assert!(member_team_admin.contains(&TeamAdmin));
        assert!(!member_team_admin.contains(&MemberWrite));
        assert!(!member_team_admin.contains(&OrgAdmin));
        let admin = union(OrgRole::Admin, []);
        assert!(admin.contains(&ProjectAdmin) && !admin.contains(&MemberWrite));
        assert!(!admin.contains(&OrgWrite));
        let manager = union(OrgRole::Manager, []);
        assert!(manager.contains(&MemberAdmin) && manager.contains(&OrgWrite));
        assert!(!manager.contains(&OrgAdmin));
        assert_eq!(union(OrgRole::Owner, []), ALL_SCOPES.to_vec());
        // each role holds everything the one below holds
        for pair in OrgRole::ALL.windows(2) {
            let (low, high) = (pair[0].scopes(), pair[1].scopes());
            assert!(
                low.iter().all(|s| high.contains(s)),
                "{} ⊄ {}",
                pair[0],
                pair[1]
            );
        }
        assert!(!OrgRole::Member.sees_all_projects(false));
        assert!(OrgRole::Member.sees_all_projects(true));
        assert!(OrgRole::Admin.sees_all_projects(false));
        assert_eq!(
            "boss".parse::<OrgRole>().unwrap_err().to_string(),
            "unknown role \"boss\": use member, admin, manager or owner"
        );
    }
}
