//! Users, team memberships, login sessions and API tokens: `AccountStore` on `users`,
//! `team_members`, `sessions` and `api_tokens`.
//!
//! The rules that keep a server manageable are checked here, in the transaction of the change,
//! with the rows they depend on locked (PostgreSQL and MariaDB; SQLite's writers queue): the
//! last global admin stays one, and a team that has admins keeps one.

use chrono::{DateTime, Utc};
use pikoci_core::name::is_canonical;
use pikoci_core::secrets::Secret;
use pikoci_core::store::audit::actions;
use pikoci_core::store::{
    AccountStore, ApiToken, ApiTokenId, AuthProvider, Identity, Membership, NewApiToken,
    NewSession, NewUser, PasswordChange, Role, Session, StoreError, StoreResult, TeamId, TokenHash,
    User, UserId, UserUpdate,
};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
};

use super::SqlStore;
use super::audit_log::{self, Change};
use super::convert::{ms, time};
use crate::entity::{api_token, session, team, team_member, user, user_identity};
use crate::error::{Class, Context, classify, corrupt, db_error};

/// The longest full name.
const MAX_FULL_NAME: usize = 255;

pub(super) fn to_user(m: user::Model) -> User {
    User {
        id: UserId(m.id),
        has_password: m.password_hash.is_some(),
        name: m.name,
        full_name: m.full_name,
        admin: m.admin,
        must_change_password: m.must_change_password,
        created_at: time(m.created_at),
    }
}

fn role(text: &str) -> StoreResult<Role> {
    text.parse()
        .map_err(|error: String| corrupt("failed to read a stored role", error))
}

fn check_name(name: &str) -> StoreResult<()> {
    if name == pikoci_core::store::audit::SYSTEM {
        return Err(StoreError::invalid_input(format!(
            "the user name \"{name}\" is reserved: the audit log names the server's own \
             configuration with it"
        )));
    }
    if is_canonical(name) {
        Ok(())
    } else {
        Err(StoreError::invalid_input(format!(
            "invalid user name \"{}\": use a-z, 0-9, '-' and '_' (at most 255 bytes)",
            name.escape_debug()
        )))
    }
}

fn check_full_name(full_name: &str) -> StoreResult<()> {
    if full_name.len() > MAX_FULL_NAME || full_name.chars().any(char::is_control) {
        return Err(StoreError::invalid_input(format!(
            "invalid full name: at most {MAX_FULL_NAME} bytes, without control characters"
        )));
    }
    Ok(())
}

pub(super) async fn user_row<C: ConnectionTrait>(
    db: &C,
    id: UserId,
    lock: bool,
) -> StoreResult<user::Model> {
    let mut query = user::Entity::find_by_id(id.0);
    if lock {
        query = query.lock_exclusive();
    }
    query
        .one(db)
        .await
        .context(|| format!("failed to load user {id}"))?
        .ok_or_else(|| StoreError::not_found(format!("user {id} does not exist")))
}

/// Inserts a user through `db`; `Conflict` when the name is taken.
pub(super) async fn insert_user<C: ConnectionTrait>(
    db: &C,
    new: NewUser,
    at: DateTime<Utc>,
) -> StoreResult<user::Model> {
    check_name(&new.name)?;
    check_full_name(&new.full_name)?;
    let row = user::ActiveModel {
        name: Set(new.name.clone()),
        full_name: Set(new.full_name),
        password_hash: Set(new.password_hash.map(Secret::into_exposed)),
        admin: Set(new.admin),
        must_change_password: Set(new.must_change_password),
        created_at: Set(ms(at)),
        updated_at: Set(ms(at)),
        ..Default::default()
    };
    row.insert(db).await.map_err(|err| match classify(&err) {
        Class::Duplicate => StoreError::conflict(format!("user \"{}\" already exists", new.name)),
        _ => db_error(format!("failed to create user \"{}\"", new.name), err),
    })
}

/// Records a change of member `user` in team `team`'s audit log.
async fn audit_member<C: ConnectionTrait>(
    txn: &C,
    team: TeamId,
    user: &str,
    action: &str,
    details: serde_json::Value,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    audit_log::record(
        txn,
        Change {
            team,
            action,
            target_type: "member",
            target_name: user,
            pipeline: None,
            details,
            at,
        },
    )
    .await
}

/// Whether another global admin than `user` exists, with the admins' rows locked in id order
/// (so that two changes of admins lock them in the same order and never deadlock). Called
/// before the user's own row is locked.
async fn another_admin<C: ConnectionTrait>(db: &C, user: UserId) -> StoreResult<bool> {
    let admins: Vec<i64> = user::Entity::find()
        .select_only()
        .column(user::Column::Id)
        .filter(user::Column::Admin.eq(true))
        .order_by_asc(user::Column::Id)
        .lock_exclusive()
        .into_tuple()
        .all(db)
        .await
        .context(|| "failed to count the global admins")?;
    Ok(admins.iter().any(|id| *id != user.0))
}

/// Refuses a change that leaves `team`, which has admins, without one (the team's member rows
/// are locked); `leaving` is the member who stops being an admin.
async fn keep_team_admin<C: ConnectionTrait>(
    db: &C,
    team: TeamId,
    leaving: UserId,
) -> StoreResult<()> {
    let members = team_member::Entity::find()
        .filter(team_member::Column::TeamId.eq(team.0))
        .lock_exclusive()
        .all(db)
        .await
        .context(|| format!("failed to load the members of team {team}"))?;
    let admin = Role::Admin.as_str();
    let was_admin = members
        .iter()
        .any(|m| m.user_id == leaving.0 && m.role == admin);
    let others = members
        .iter()
        .any(|m| m.user_id != leaving.0 && m.role == admin);
    if was_admin && !others {
        return Err(StoreError::conflict(
            "this would leave the team with no admins: make another member an admin first",
        ));
    }
    Ok(())
}

fn to_membership(
    m: team_member::Model,
    team_name: String,
    user_name: String,
) -> StoreResult<Membership> {
    Ok(Membership {
        team_id: TeamId(m.team_id),
        team_name,
        user_id: UserId(m.user_id),
        user_name,
        role: role(&m.role)?,
    })
}

async fn to_token<C: ConnectionTrait>(db: &C, m: api_token::Model) -> StoreResult<ApiToken> {
    let team = match (m.team_id, m.role.as_deref()) {
        (Some(team_id), Some(text)) => {
            let name: Option<String> = team::Entity::find_by_id(team_id)
                .select_only()
                .column(team::Column::Name)
                .into_tuple()
                .one(db)
                .await
                .context(|| format!("failed to load team {team_id}"))?;
            let name = name.ok_or_else(|| {
                StoreError::not_found(format!("team {team_id} of API token {} is gone", m.id))
            })?;
            Some((TeamId(team_id), name, role(text)?))
        }
        _ => None,
    };
    Ok(ApiToken {
        id: ApiTokenId(m.id),
        user_id: UserId(m.user_id),
        name: m.name,
        prefix: m.prefix,
        team,
        expires_at: m.expires_at.map(time),
        last_used_at: m.last_used_at.map(time),
        created_at: time(m.created_at),
    })
}

#[async_trait::async_trait]
impl AccountStore for SqlStore {
    async fn create_user(&self, new: NewUser, at: DateTime<Utc>) -> StoreResult<User> {
        insert_user(self.db(), new, at).await.map(to_user)
    }

    async fn user(&self, name: &str) -> StoreResult<User> {
        Ok(self.login(name).await?.0)
    }

    async fn login(&self, name: &str) -> StoreResult<(User, Option<Secret>)> {
        let not_found =
            || StoreError::not_found(format!("user \"{}\" does not exist", name.escape_debug()));
        // Not canonical, not a user: MySQL's collation would match `admin ` to `admin`.
        if !is_canonical(name) {
            return Err(not_found());
        }
        let row = user::Entity::find()
            .filter(user::Column::Name.eq(name))
            .one(self.db())
            .await
            .context(|| format!("failed to load user \"{name}\""))?
            .ok_or_else(not_found)?;
        let hash = row.password_hash.clone().map(Secret::new);
        Ok((to_user(row), hash))
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        Ok(user::Entity::find()
            .order_by_asc(user::Column::Name)
            .all(self.db())
            .await
            .context(|| "failed to list users")?
            .into_iter()
            .map(to_user)
            .collect())
    }

    async fn count_users(&self) -> StoreResult<u64> {
        user::Entity::find()
            .count(self.db())
            .await
            .context(|| "failed to count users")
    }

    async fn update_user(&self, id: UserId, update: UserUpdate) -> StoreResult<User> {
        if let Some(name) = &update.name {
            check_name(name)?;
        }
        if let Some(full_name) = &update.full_name {
            check_full_name(full_name)?;
        }
        let txn = self.begin().await?;
        if update.admin == Some(false) {
            super::sso::lock_login_rule(&txn).await?;
        }
        let last_admin = update.admin == Some(false) && !another_admin(&txn, id).await?;
        let row = user_row(&txn, id, true).await?;
        if last_admin && row.admin {
            return Err(StoreError::conflict(format!(
                "user \"{}\" is the last global admin: make another user a global admin first",
                row.name
            )));
        }
        let old_name = row.name.clone();
        let mut active = row.into_active_model();
        if let Some(name) = update.name {
            active.name = Set(name);
        }
        if let Some(full_name) = update.full_name {
            active.full_name = Set(full_name);
        }
        if let Some(admin) = update.admin {
            active.admin = Set(admin);
        }
        let updated = match active.update(&txn).await {
            Ok(row) => row,
            Err(err) if classify(&err) == Class::Duplicate => {
                return Err(StoreError::conflict(
                    "another user already has this name".to_owned(),
                ));
            }
            Err(err) => {
                return Err(db_error(
                    format!("failed to update user \"{old_name}\""),
                    err,
                ));
            }
        };
        if update.admin == Some(false) {
            super::sso::keep_a_way_in(&txn).await?;
        }
        txn.commit()
            .await
            .context(|| format!("failed to update user \"{old_name}\""))?;
        Ok(to_user(updated))
    }

    async fn set_password(&self, change: PasswordChange) -> StoreResult<()> {
        let context = || format!("failed to set the password of user {}", change.user);
        let txn = self.begin().await?;
        let row = user_row(&txn, change.user, true).await?;
        let mut active = row.into_active_model();
        active.password_hash = Set(Some(change.password_hash.expose().to_owned()));
        active.must_change_password = Set(change.must_change_password);
        active.update(&txn).await.context(context)?;
        let mut sessions =
            session::Entity::delete_many().filter(session::Column::UserId.eq(change.user.0));
        if let Some(keep) = &change.keep_session {
            sessions = sessions.filter(session::Column::TokenHash.ne(keep.0.as_str()));
        }
        sessions.exec(&txn).await.context(context)?;
        if change.revoke_tokens {
            api_token::Entity::delete_many()
                .filter(api_token::Column::UserId.eq(change.user.0))
                .exec(&txn)
                .await
                .context(context)?;
        }
        txn.commit().await.context(context)
    }

    async fn delete_user(&self, id: UserId) -> StoreResult<()> {
        let txn = self.begin().await?;
        super::sso::lock_login_rule(&txn).await?;
        let last_admin = !another_admin(&txn, id).await?;
        let row = user_row(&txn, id, true).await?;
        if row.admin && last_admin {
            return Err(StoreError::conflict(format!(
                "user \"{}\" is the last global admin: make another user a global admin first",
                row.name
            )));
        }
        let context = || format!("failed to delete user \"{}\"", row.name);
        // Nor may a team lose its last admin with the user: every team of the user, in team
        // order, with its member rows locked (`keep_team_admin` reads the role under the lock).
        let teams: Vec<(i64, String)> = team_member::Entity::find()
            .select_only()
            .column(team_member::Column::TeamId)
            .column(team_member::Column::Role)
            .filter(team_member::Column::UserId.eq(id.0))
            .order_by_asc(team_member::Column::TeamId)
            .into_tuple()
            .all(&txn)
            .await
            .context(context)?;
        for (team, _) in &teams {
            let team = *team;
            keep_team_admin(&txn, TeamId(team), id)
                .await
                .map_err(|error| {
                    if error.kind() == pikoci_core::ErrorKind::Conflict {
                        StoreError::conflict(format!(
                            "user \"{}\" is the last admin of a team (id {team}): make another \
                             member its admin first",
                            row.name
                        ))
                    } else {
                        error
                    }
                })?;
        }
        // Children first: foreign keys cascade on every backend but SQLite without
        // `foreign_keys`, and this leaves nothing to chance.
        session::Entity::delete_many()
            .filter(session::Column::UserId.eq(id.0))
            .exec(&txn)
            .await
            .context(context)?;
        api_token::Entity::delete_many()
            .filter(api_token::Column::UserId.eq(id.0))
            .exec(&txn)
            .await
            .context(context)?;
        team_member::Entity::delete_many()
            .filter(team_member::Column::UserId.eq(id.0))
            .exec(&txn)
            .await
            .context(context)?;
        user_identity::Entity::delete_many()
            .filter(user_identity::Column::UserId.eq(id.0))
            .exec(&txn)
            .await
            .context(context)?;
        // Each team the user leaves records it, as when the member is removed.
        for (team, role) in teams {
            audit_member(
                &txn,
                TeamId(team),
                &row.name,
                actions::MEMBER_REMOVED,
                serde_json::json!({ "role": role, "user_deleted": true }),
                Utc::now(),
            )
            .await?;
        }
        user::Entity::delete_by_id(id.0)
            .exec(&txn)
            .await
            .context(context)?;
        super::sso::keep_a_way_in(&txn).await?;
        txn.commit().await.context(context)
    }

    async fn memberships(&self, id: UserId) -> StoreResult<Vec<Membership>> {
        let user = user_row(self.db(), id, false).await?;
        let rows = team_member::Entity::find()
            .filter(team_member::Column::UserId.eq(id.0))
            .all(self.db())
            .await
            .context(|| format!("failed to load the teams of user \"{}\"", user.name))?;
        let teams: Vec<(i64, String)> = team::Entity::find()
            .select_only()
            .column(team::Column::Id)
            .column(team::Column::Name)
            .filter(team::Column::Id.is_in(rows.iter().map(|m| m.team_id)))
            .into_tuple()
            .all(self.db())
            .await
            .context(|| format!("failed to load the teams of user \"{}\"", user.name))?;
        let mut memberships = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some((_, team_name)) = teams.iter().find(|(id, _)| *id == row.team_id) {
                memberships.push(to_membership(row, team_name.clone(), user.name.clone())?);
            }
        }
        memberships.sort_by(|a, b| a.team_name.cmp(&b.team_name));
        Ok(memberships)
    }

    async fn team_members(&self, team_id: TeamId) -> StoreResult<Vec<Membership>> {
        let team = team::Entity::find_by_id(team_id.0)
            .one(self.db())
            .await
            .context(|| format!("failed to load team {team_id}"))?
            .ok_or_else(|| StoreError::not_found(format!("team {team_id} does not exist")))?;
        let rows = team_member::Entity::find()
            .filter(team_member::Column::TeamId.eq(team_id.0))
            .all(self.db())
            .await
            .context(|| format!("failed to load the members of team \"{}\"", team.name))?;
        let users: Vec<(i64, String)> = user::Entity::find()
            .select_only()
            .column(user::Column::Id)
            .column(user::Column::Name)
            .filter(user::Column::Id.is_in(rows.iter().map(|m| m.user_id)))
            .into_tuple()
            .all(self.db())
            .await
            .context(|| format!("failed to load the members of team \"{}\"", team.name))?;
        let mut members = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some((_, user_name)) = users.iter().find(|(id, _)| *id == row.user_id) {
                members.push(to_membership(row, team.name.clone(), user_name.clone())?);
            }
        }
        members.sort_by(|a, b| a.user_name.cmp(&b.user_name));
        Ok(members)
    }

    async fn set_member(
        &self,
        team_id: TeamId,
        user_id: UserId,
        role: Role,
        at: DateTime<Utc>,
    ) -> StoreResult<Membership> {
        let txn = self.begin().await?;
        // Users' rows before members' rows, as `delete_user` locks them: no deadlock.
        let user = user_row(&txn, user_id, true).await?;
        let team = team::Entity::find_by_id(team_id.0)
            .one(&txn)
            .await
            .context(|| format!("failed to load team {team_id}"))?
            .ok_or_else(|| StoreError::not_found(format!("team {team_id} does not exist")))?;
        let context = || {
            format!(
                "failed to set the role of \"{}\" in team \"{}\"",
                user.name, team.name
            )
        };
        if role != Role::Admin {
            keep_team_admin(&txn, team_id, user_id).await?;
        }
        let existing = team_member::Entity::find()
            .filter(team_member::Column::TeamId.eq(team_id.0))
            .filter(team_member::Column::UserId.eq(user_id.0))
            .one(&txn)
            .await
            .context(context)?;
        let audit = match &existing {
            None => Some((actions::MEMBER_ADDED, serde_json::json!({ "role": role }))),
            Some(row) if row.role != role.as_str() => Some((
                actions::MEMBER_ROLE_CHANGED,
                serde_json::json!({ "from": row.role, "to": role }),
            )),
            Some(_) => None,
        };
        let row = match existing {
            Some(row) => {
                let mut active = row.into_active_model();
                active.role = Set(role.as_str().to_owned());
                active.update(&txn).await.context(context)?
            }
            None => team_member::ActiveModel {
                team_id: Set(team_id.0),
                user_id: Set(user_id.0),
                role: Set(role.as_str().to_owned()),
                created_at: Set(ms(at)),
                ..Default::default()
            }
            .insert(&txn)
            .await
            .context(context)?,
        };
        if let Some((action, details)) = audit {
            audit_member(&txn, team_id, &user.name, action, details, at).await?;
        }
        txn.commit().await.context(context)?;
        to_membership(row, team.name, user.name)
    }

    async fn remove_member(&self, team_id: TeamId, user_id: UserId) -> StoreResult<()> {
        let txn = self.begin().await?;
        let user = user_row(&txn, user_id, true).await?;
        let context = || format!("failed to remove \"{}\" from team {team_id}", user.name);
        keep_team_admin(&txn, team_id, user_id).await?;
        let deleted = team_member::Entity::delete_many()
            .filter(team_member::Column::TeamId.eq(team_id.0))
            .filter(team_member::Column::UserId.eq(user_id.0))
            .exec(&txn)
            .await
            .context(context)?;
        if deleted.rows_affected == 0 {
            return Err(StoreError::not_found(format!(
                "user \"{}\" is not a member of team {team_id}",
                user.name
            )));
        }
        api_token::Entity::delete_many()
            .filter(api_token::Column::UserId.eq(user_id.0))
            .filter(api_token::Column::TeamId.eq(team_id.0))
            .exec(&txn)
            .await
            .context(context)?;
        audit_member(
            &txn,
            team_id,
            &user.name,
            actions::MEMBER_REMOVED,
            serde_json::json!({}),
            Utc::now(),
        )
        .await?;
        txn.commit().await.context(context)
    }

    async fn create_session(&self, new: NewSession) -> StoreResult<()> {
        session::ActiveModel {
            user_id: Set(new.user.0),
            token_hash: Set(new.token_hash.0),
            created_at: Set(ms(new.created_at)),
            expires_at: Set(ms(new.expires_at)),
            ..Default::default()
        }
        .insert(self.db())
        .await
        .context(|| format!("failed to store a session of user {}", new.user))?;
        Ok(())
    }

    async fn session(&self, token: &TokenHash) -> StoreResult<Session> {
        let row = session::Entity::find()
            .filter(session::Column::TokenHash.eq(token.0.as_str()))
            .one(self.db())
            .await
            .context(|| "failed to look up a session")?
            .ok_or_else(|| StoreError::not_found("no such session"))?;
        let user = user_row(self.db(), UserId(row.user_id), false).await?;
        Ok(Session {
            user: to_user(user),
            created_at: time(row.created_at),
            expires_at: time(row.expires_at),
        })
    }

    async fn delete_session(&self, token: &TokenHash) -> StoreResult<()> {
        session::Entity::delete_many()
            .filter(session::Column::TokenHash.eq(token.0.as_str()))
            .exec(self.db())
            .await
            .context(|| "failed to delete a session")?;
        Ok(())
    }

    async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        Ok(session::Entity::delete_many()
            .filter(session::Column::ExpiresAt.lt(ms(now)))
            .exec(self.db())
            .await
            .context(|| "failed to delete expired sessions")?
            .rows_affected)
    }

    async fn create_api_token(&self, new: NewApiToken) -> StoreResult<ApiToken> {
        if new.name.trim().is_empty()
            || new.name.len() > MAX_FULL_NAME
            || new.name.chars().any(char::is_control)
        {
            return Err(StoreError::invalid_input(format!(
                "invalid API token name: give one of 1 to {MAX_FULL_NAME} bytes, without control \
                 characters"
            )));
        }
        let row = api_token::ActiveModel {
            user_id: Set(new.user.0),
            name: Set(new.name.clone()),
            token_hash: Set(new.token_hash.0),
            prefix: Set(new.prefix),
            team_id: Set(new.team.map(|(team, _)| team.0)),
            role: Set(new.team.map(|(_, role)| role.as_str().to_owned())),
            expires_at: Set(new.expires_at.map(ms)),
            last_used_at: Set(None),
            created_at: Set(ms(new.created_at)),
            ..Default::default()
        };
        match row.insert(self.db()).await {
            Ok(row) => to_token(self.db(), row).await,
            Err(err) if classify(&err) == Class::Duplicate => Err(StoreError::conflict(format!(
                "you already have an API token named \"{}\": choose another name or delete it",
                new.name.escape_debug()
            ))),
            Err(err) => Err(db_error("failed to store an API token", err)),
        }
    }

    async fn api_token(&self, token: &TokenHash) -> StoreResult<(ApiToken, User)> {
        let row = api_token::Entity::find()
            .filter(api_token::Column::TokenHash.eq(token.0.as_str()))
            .one(self.db())
            .await
            .context(|| "failed to look up an API token")?
            .ok_or_else(|| StoreError::not_found("no such API token"))?;
        let user = user_row(self.db(), UserId(row.user_id), false).await?;
        Ok((to_token(self.db(), row).await?, to_user(user)))
    }

    async fn list_api_tokens(&self, user: UserId) -> StoreResult<Vec<ApiToken>> {
        let rows = api_token::Entity::find()
            .filter(api_token::Column::UserId.eq(user.0))
            .order_by_asc(api_token::Column::Name)
            .all(self.db())
            .await
            .context(|| format!("failed to list the API tokens of user {user}"))?;
        let mut tokens = Vec::with_capacity(rows.len());
        for row in rows {
            tokens.push(to_token(self.db(), row).await?);
        }
        Ok(tokens)
    }

    async fn delete_api_token(&self, user: UserId, token: ApiTokenId) -> StoreResult<()> {
        let deleted = api_token::Entity::delete_many()
            .filter(api_token::Column::Id.eq(token.0))
            .filter(api_token::Column::UserId.eq(user.0))
            .exec(self.db())
            .await
            .context(|| format!("failed to delete API token {token}"))?;
        if deleted.rows_affected == 0 {
            return Err(StoreError::not_found(format!(
                "you have no API token with id {token}"
            )));
        }
        Ok(())
    }

    async fn auth_providers(&self) -> StoreResult<Vec<AuthProvider>> {
        super::sso::providers(self).await
    }

    async fn auth_provider(&self, name: &str) -> StoreResult<AuthProvider> {
        super::sso::provider(self, name).await
    }

    async fn put_auth_provider(
        &self,
        provider: &AuthProvider,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        super::sso::put_provider(self, provider, at).await
    }

    async fn delete_auth_provider(&self, name: &str) -> StoreResult<()> {
        super::sso::delete_provider(self, name).await
    }

    async fn identities(&self, user: UserId) -> StoreResult<Vec<Identity>> {
        super::sso::identities(self, user).await
    }

    async fn identity_user(&self, provider: &str, subject: &str) -> StoreResult<Option<User>> {
        super::sso::identity_user(self, provider, subject).await
    }

    async fn link_identity(
        &self,
        user: UserId,
        provider: &str,
        subject: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<User> {
        super::sso::link_identity(self, user, provider, subject, at).await
    }

    async fn create_user_with_identity(
        &self,
        user: NewUser,
        provider: &str,
        subject: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<User> {
        super::sso::create_user_with_identity(self, user, provider, subject, at).await
    }

    async fn unlink_identity(&self, user: UserId, provider: &str) -> StoreResult<()> {
        super::sso::unlink_identity(self, user, provider, true).await
    }

    async fn delete_identity(&self, user: UserId, provider: &str) -> StoreResult<()> {
        super::sso::unlink_identity(self, user, provider, false).await
    }

    async fn local_login(&self) -> StoreResult<bool> {
        super::sso::local_login(self).await
    }

    async fn set_local_login(&self, enabled: bool, at: DateTime<Utc>) -> StoreResult<()> {
        super::sso::set_local_login(self, enabled, at).await
    }

    async fn touch_api_token(&self, token: ApiTokenId, at: DateTime<Utc>) -> StoreResult<()> {
        api_token::Entity::update_many()
            .col_expr(api_token::Column::LastUsedAt, Expr::value(ms(at)))
            .filter(api_token::Column::Id.eq(token.0))
            .exec(self.db())
            .await
            .context(|| format!("failed to record the use of API token {token}"))?;
        Ok(())
    }
}
