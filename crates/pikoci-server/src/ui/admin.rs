//! The pages around the pipelines: the visitor's profile (API tokens, linked accounts), the
//! workers, and a team's members, audit log and secrets.

use askama::Template;
use axum::extract::{Path, Query};
use axum::response::Response;
use pikoci_core::store::Role;
use serde::Deserialize;

use super::pages::when;
use super::{Frame, PageError, Visit, render, segment};

// ---- profile ----

#[derive(Debug, Deserialize)]
struct TokenItem {
    id: i64,
    name: String,
    prefix: String,
    #[serde(default)]
    team: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    last_used_at: Option<String>,
    created_at: String,
}

#[derive(Debug, Deserialize)]
struct IdentityItem {
    provider: String,
    subject: String,
}

#[derive(Debug, Deserialize)]
struct Methods {
    providers: Vec<ProviderItem>,
}

#[derive(Debug, Deserialize)]
struct ProviderItem {
    name: String,
    display_name: String,
}

/// A token as its row shows it.
struct TokenRow {
    id: i64,
    name: String,
    prefix: String,
    scope: String,
    expires: String,
    last_used: String,
    created: String,
}

#[derive(Template)]
#[template(path = "profile.html")]
struct ProfilePage {
    frame: Frame,
    name: String,
    tokens: Vec<TokenRow>,
    /// Linked identities: (provider, subject).
    identities: Vec<(String, String)>,
    /// Providers not linked yet: (name, display name).
    linkable: Vec<(String, String)>,
    /// The teams the visitor may make team tokens for: (team, role).
    teams: Vec<(String, String)>,
}

/// `GET /profile`: the visitor's API tokens (create, revoke) and linked accounts (link,
/// unlink), and a link to choosing a new password.
pub(crate) async fn profile(visit: Visit) -> Result<Response, PageError> {
    let Some(me) = visit.me.clone() else {
        return Err(PageError::LogIn {
            next: "/profile".to_owned(),
        });
    };
    let tokens: Vec<TokenItem> = visit.get("/api/v1/api-tokens").await?;
    let identities: Vec<IdentityItem> = visit.get("/api/v1/profile/identities").await?;
    let methods: Methods = visit.get("/api/v1/auth/methods").await?;
    let linked: Vec<&str> = identities.iter().map(|i| i.provider.as_str()).collect();
    let page = ProfilePage {
        frame: visit.frame("Profile", Vec::new()),
        tokens: tokens
            .into_iter()
            .map(|token| TokenRow {
                id: token.id,
                scope: match (&token.team, &token.role) {
                    (Some(team), Some(role)) => format!("team {team}, role {role}"),
                    (Some(team), None) => format!("team {team}"),
                    _ => "acts as you".to_owned(),
                },
                expires: token
                    .expires_at
                    .as_deref()
                    .map_or_else(|| "never".to_owned(), when),
                last_used: token
                    .last_used_at
                    .as_deref()
                    .map_or_else(|| "never".to_owned(), when),
                created: when(&token.created_at),
                name: token.name,
                prefix: token.prefix,
            })
            .collect(),
        linkable: methods
            .providers
            .into_iter()
            .filter(|p| !linked.contains(&p.name.as_str()))
            .map(|p| (p.name, p.display_name))
            .collect(),
        identities: identities
            .into_iter()
            .map(|i| (i.provider, i.subject))
            .collect(),
        teams: me
            .teams
            .iter()
            .map(|(team, role)| (team.clone(), role.as_str().to_owned()))
            .collect(),
        name: me.name,
    };
    Ok(render(&page))
}

// ---- workers ----

#[derive(Debug, Deserialize)]
struct WorkerItem {
    id: String,
    #[serde(default)]
    team: Option<String>,
    tags: Vec<String>,
    slots: u32,
    running: u32,
    version: String,
    hostname: String,
    last_heartbeat_at: String,
    state: String,
}

#[derive(Template)]
#[template(path = "workers.html")]
struct WorkersPage {
    frame: Frame,
    workers: Vec<WorkerRow>,
    admin: bool,
}

struct WorkerRow {
    id: String,
    team: String,
    tags: String,
    slots: String,
    version: String,
    hostname: String,
    last_heartbeat: String,
    state: String,
}

/// `GET /workers`: the global workers and those of the visitor's teams; global admins may
/// forget lost ones.
pub(crate) async fn workers(visit: Visit) -> Result<Response, PageError> {
    if visit.me.is_none() {
        return Err(PageError::LogIn {
            next: "/workers".to_owned(),
        });
    }
    let workers: Vec<WorkerItem> = visit.get("/api/v1/workers").await?;
    let page = WorkersPage {
        frame: visit.frame(
            "Workers",
            vec![("workers".to_owned(), "/workers".to_owned())],
        ),
        admin: visit.me.as_ref().is_some_and(|me| me.admin),
        workers: workers
            .into_iter()
            .map(|worker| WorkerRow {
                team: worker.team.unwrap_or_else(|| "every team".to_owned()),
                tags: worker.tags.join(", "),
                slots: format!("{} of {}", worker.running, worker.slots),
                last_heartbeat: when(&worker.last_heartbeat_at),
                id: worker.id,
                version: worker.version,
                hostname: worker.hostname,
                state: worker.state,
            })
            .collect(),
    };
    Ok(render(&page))
}

// ---- a team: members, audit log, secrets ----

#[derive(Debug, Deserialize)]
struct MemberItem {
    user: String,
    role: String,
}

#[derive(Debug, Deserialize)]
struct SecretItem {
    name: String,
    kind: String,
}

#[derive(Debug, Deserialize)]
struct EntryItem {
    actor: String,
    action: String,
    target_type: String,
    target_name: String,
    #[serde(default)]
    pipeline: Option<String>,
    #[serde(default)]
    details: serde_json::Value,
    created_at: String,
}

struct EntryRow {
    actor: String,
    action: String,
    target: String,
    details: String,
    at: String,
}

#[derive(Template)]
#[template(path = "team.html")]
struct TeamPage {
    frame: Frame,
    team: String,
    api: String,
    tab: &'static str,
    members: Vec<(String, String)>,
    roles: [&'static str; 4],
    /// Name, kind, and the name as a URL's path segment.
    secrets: Vec<(String, String, String)>,
    entries: Vec<EntryRow>,
    /// The audit log's filters.
    user_filter: String,
    action_filter: String,
    older: Option<String>,
    may_admin: bool,
    may_maintain: bool,
}

#[derive(Debug, Deserialize)]
pub(crate) struct TeamQuery {
    tab: Option<String>,
    user: Option<String>,
    action: Option<String>,
    before: Option<i64>,
}

/// `GET /teams/{tc}?tab=members|audit|secrets`: the team's members (roles set by its admins),
/// audit log (filtered by user and action, 50 a page) and secrets (names only; set and
/// deleted by maintainers).
pub(crate) async fn team(
    visit: Visit,
    Path(tc): Path<String>,
    Query(query): Query<TeamQuery>,
) -> Result<Response, PageError> {
    let here = format!("/teams/{}", segment(&tc));
    let api = format!("/api/v1{here}");
    let tab = match query.tab.as_deref() {
        Some("audit") => "audit",
        Some("secrets") => "secrets",
        _ => "members",
    };
    let mut page = TeamPage {
        frame: visit.frame(format!("Team {tc}"), vec![(tc.clone(), here.clone())]),
        team: tc.clone(),
        api: api.clone(),
        tab,
        members: Vec::new(),
        roles: Role::ALL.map(Role::as_str),
        secrets: Vec::new(),
        entries: Vec::new(),
        user_filter: String::new(),
        action_filter: String::new(),
        older: None,
        may_admin: visit.may(&tc, Role::Admin),
        may_maintain: visit.may(&tc, Role::Maintain),
    };
    match tab {
        "members" => {
            let members: Vec<MemberItem> = visit.get(&format!("{api}/members")).await?;
            page.members = members.into_iter().map(|m| (m.user, m.role)).collect();
        }
        "secrets" => {
            let secrets: Vec<SecretItem> = visit.get(&format!("{api}/secrets")).await?;
            page.secrets = secrets
                .into_iter()
                .map(|s| {
                    let segment = segment(&s.name);
                    (s.name, s.kind, segment)
                })
                .collect();
        }
        _ => {
            let clean = |text: Option<&str>| {
                text.map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
            };
            let user = clean(query.user.as_deref());
            let action = clean(query.action.as_deref());
            let mut params = vec!["limit=50".to_owned()];
            let mut keep = vec!["tab=audit".to_owned()];
            for (name, value) in [("user", &user), ("action", &action)] {
                if let Some(value) = value {
                    let value = pikoci_core::percent::encode(value);
                    params.push(format!("{name}={value}"));
                    keep.push(format!("{name}={value}"));
                }
            }
            if let Some(before) = query.before {
                params.push(format!("before={before}"));
            }
            let (entries, meta): (Vec<EntryItem>, serde_json::Value) = visit
                .read(&format!("{api}/audit?{}", params.join("&")))
                .await?;
            page.older = meta["has_more"]
                .as_bool()
                .filter(|more| *more)
                .and_then(|_| meta["oldest_id"].as_i64())
                .map(|oldest| format!("{here}?{}&before={oldest}", keep.join("&")));
            page.entries = entries
                .into_iter()
                .map(|entry| EntryRow {
                    target: match &entry.pipeline {
                        Some(pipeline) if entry.target_type != "pipeline" => format!(
                            "{} {} (pipeline {pipeline})",
                            entry.target_type, entry.target_name
                        ),
                        _ => format!("{} {}", entry.target_type, entry.target_name),
                    },
                    details: match &entry.details {
                        serde_json::Value::Null => String::new(),
                        serde_json::Value::Object(map) if map.is_empty() => String::new(),
                        details => details.to_string(),
                    },
                    at: when(&entry.created_at),
                    actor: entry.actor,
                    action: entry.action,
                })
                .collect();
            page.user_filter = user.unwrap_or_default();
            page.action_filter = action.unwrap_or_default();
        }
    }
    Ok(render(&page))
}
