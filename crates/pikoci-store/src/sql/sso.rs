//! Single sign-on: identity providers (`auth_providers`), the identities linked to users
//! (`user_identities`) and the `local_login` setting (`settings`).
//!
//! One rule is kept in the transaction of every change that could break it: while login with
//! a password is off, a global admin has an identity at an enabled provider, so that someone
//! can always log in and turn it back on. A user keeps a way in too: an identity is unlinked
//! only when the user still has a password (with local login on) or another identity.

use chrono::{DateTime, Utc};
use pikoci_core::name::is_canonical;
use pikoci_core::secrets::Secret;
use pikoci_core::store::{AuthProvider, Identity, NewUser, StoreError, StoreResult, User, UserId};
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect,
};

use super::SqlStore;
use super::convert::{ms, time};
use crate::entity::{auth_provider, setting, user, user_identity};
use crate::error::{Class, Context, classify, db_error};

/// The setting that turns login with a password off.
const LOCAL_LOGIN: &str = "local_login";

fn to_provider(m: auth_provider::Model) -> AuthProvider {
    AuthProvider {
        name: m.name,
        display_name: m.display_name,
        kind: m.kind,
        issuer_url: m.issuer_url,
        auth_url: m.auth_url,
        token_url: m.token_url,
        userinfo_url: m.userinfo_url,
        scopes: m.scopes.split_whitespace().map(str::to_owned).collect(),
        client_id: m.client_id,
        client_secret: Secret::new(m.client_secret),
        username_claim: m.username_claim,
        subject_claim: m.subject_claim,
        enabled: m.enabled,
        allow_signup: m.allow_signup,
        created_at: time(m.created_at),
        updated_at: time(m.updated_at),
    }
}

async fn provider_row<C: ConnectionTrait>(db: &C, name: &str) -> StoreResult<auth_provider::Model> {
    auth_provider::Entity::find()
        .filter(auth_provider::Column::Name.eq(name))
        .one(db)
        .await
        .context(|| format!("failed to load identity provider \"{name}\""))?
        .ok_or_else(|| {
            StoreError::not_found(format!(
                "there is no identity provider \"{}\"",
                name.escape_debug()
            ))
        })
}

pub(super) async fn providers(store: &SqlStore) -> StoreResult<Vec<AuthProvider>> {
    Ok(auth_provider::Entity::find()
        .order_by_asc(auth_provider::Column::Name)
        .all(store.db())
        .await
        .context(|| "failed to list the identity providers")?
        .into_iter()
        .map(to_provider)
        .collect())
}

pub(super) async fn provider(store: &SqlStore, name: &str) -> StoreResult<AuthProvider> {
    provider_row(store.db(), name).await.map(to_provider)
}

pub(super) async fn put_provider(
    store: &SqlStore,
    provider: &AuthProvider,
    at: DateTime<Utc>,
) -> StoreResult<bool> {
    if !is_canonical(&provider.name) {
        return Err(StoreError::invalid_input(format!(
            "invalid provider name \"{}\": use a-z, 0-9, '-' and '_' (at most 255 bytes)",
            provider.name.escape_debug()
        )));
    }
    let context = || format!("failed to store identity provider \"{}\"", provider.name);
    let txn = store.begin().await?;
    lock_login_rule(&txn).await?;
    let existing = auth_provider::Entity::find()
        .filter(auth_provider::Column::Name.eq(provider.name.as_str()))
        .one(&txn)
        .await
        .context(context)?;
    if let Some(row) = &existing {
        let same_identities = row.kind == provider.kind
            && row.issuer_url == provider.issuer_url
            && row.auth_url == provider.auth_url
            && row.token_url == provider.token_url
            && row.userinfo_url == provider.userinfo_url
            && row.subject_claim == provider.subject_claim;
        let linked = user_identity::Entity::find()
            .filter(user_identity::Column::ProviderId.eq(row.id))
            .one(&txn)
            .await
            .context(context)?
            .is_some();
        if !same_identities && linked {
            return Err(StoreError::conflict(format!(
                "identity provider \"{}\" has linked identities, and its kind, URLs or subject \
                 claim would change what they mean (another issuer's user with the same subject \
                 would log in as ours): create a provider with another name, or delete this one \
                 (with its identities) first",
                provider.name
            )));
        }
    }
    let created = existing.is_none();
    let mut row = match existing {
        Some(row) => row.into_active_model(),
        None => auth_provider::ActiveModel {
            name: Set(provider.name.clone()),
            created_at: Set(ms(at)),
            ..Default::default()
        },
    };
    row.display_name = Set(provider.display_name.clone());
    row.kind = Set(provider.kind.clone());
    row.issuer_url = Set(provider.issuer_url.clone());
    row.auth_url = Set(provider.auth_url.clone());
    row.token_url = Set(provider.token_url.clone());
    row.userinfo_url = Set(provider.userinfo_url.clone());
    row.scopes = Set(provider.scopes.join(" "));
    row.client_id = Set(provider.client_id.clone());
    row.client_secret = Set(provider.client_secret.expose().to_owned());
    row.username_claim = Set(provider.username_claim.clone());
    row.subject_claim = Set(provider.subject_claim.clone());
    row.enabled = Set(provider.enabled);
    row.allow_signup = Set(provider.allow_signup);
    row.updated_at = Set(ms(at));
    row.save(&txn).await.map_err(|err| match classify(&err) {
        // Two admins creating the same provider at once.
        Class::Duplicate => StoreError::conflict(format!(
            "identity provider \"{}\" was created meanwhile: try again",
            provider.name
        )),
        _ => db_error(context(), err),
    })?;
    if !provider.enabled {
        keep_a_way_in(&txn).await?;
    }
    txn.commit().await.context(context)?;
    Ok(created)
}

pub(super) async fn delete_provider(store: &SqlStore, name: &str) -> StoreResult<()> {
    let context = || format!("failed to delete identity provider \"{name}\"");
    let txn = store.begin().await?;
    lock_login_rule(&txn).await?;
    let row = provider_row(&txn, name).await?;
    user_identity::Entity::delete_many()
        .filter(user_identity::Column::ProviderId.eq(row.id))
        .exec(&txn)
        .await
        .context(context)?;
    auth_provider::Entity::delete_by_id(row.id)
        .exec(&txn)
        .await
        .context(context)?;
    keep_a_way_in(&txn).await?;
    txn.commit().await.context(context)
}

pub(super) async fn identities(store: &SqlStore, user: UserId) -> StoreResult<Vec<Identity>> {
    let context = || format!("failed to list the identities of user {user}");
    let rows = user_identity::Entity::find()
        .filter(user_identity::Column::UserId.eq(user.0))
        .all(store.db())
        .await
        .context(context)?;
    let providers = auth_provider::Entity::find()
        .all(store.db())
        .await
        .context(context)?;
    let mut identities: Vec<Identity> = rows
        .into_iter()
        .filter_map(|row| {
            let provider = providers.iter().find(|p| p.id == row.provider_id)?;
            Some(Identity {
                provider: provider.name.clone(),
                subject: row.subject,
                created_at: time(row.created_at),
            })
        })
        .collect();
    identities.sort_by(|a, b| a.provider.cmp(&b.provider));
    Ok(identities)
}

pub(super) async fn identity_user(
    store: &SqlStore,
    provider: &str,
    subject: &str,
) -> StoreResult<Option<User>> {
    let provider = provider_row(store.db(), provider).await?;
    let Some(identity) = user_identity::Entity::find()
        .filter(user_identity::Column::ProviderId.eq(provider.id))
        .filter(user_identity::Column::Subject.eq(subject))
        .one(store.db())
        .await
        .context(|| format!("failed to look up an identity at \"{}\"", provider.name))?
    else {
        return Ok(None);
    };
    let found = user::Entity::find_by_id(identity.user_id)
        .one(store.db())
        .await
        .context(|| format!("failed to load user {}", identity.user_id))?;
    Ok(found.map(super::accounts::to_user))
}

/// Links `subject` at `provider` to `user` in `txn`.
async fn link<C: ConnectionTrait>(
    txn: &C,
    user: &user::Model,
    provider: &auth_provider::Model,
    subject: &str,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    if subject.is_empty() || subject.len() > 255 {
        return Err(StoreError::invalid_input(format!(
            "the provider \"{}\" named the user with an identifier of {} bytes: 1 to 255 are \
             accepted",
            provider.name,
            subject.len()
        )));
    }
    let context = || {
        format!(
            "failed to link an identity at \"{}\" to user \"{}\"",
            provider.name, user.name
        )
    };
    let existing = user_identity::Entity::find()
        .filter(user_identity::Column::ProviderId.eq(provider.id))
        .filter(
            sea_orm::Condition::any()
                .add(user_identity::Column::Subject.eq(subject))
                .add(user_identity::Column::UserId.eq(user.id)),
        )
        .all(txn)
        .await
        .context(context)?;
    if existing
        .iter()
        .any(|row| row.user_id == user.id && row.subject == subject)
    {
        return Ok(());
    }
    if existing.iter().any(|row| row.user_id == user.id) {
        return Err(StoreError::conflict(format!(
            "user \"{}\" is linked to another identity at \"{}\": unlink it first",
            user.name, provider.name
        )));
    }
    if !existing.is_empty() {
        return Err(StoreError::conflict(format!(
            "this identity at \"{}\" is linked to another user: log in as that user, or ask an \
             admin to delete it",
            provider.name
        )));
    }
    user_identity::ActiveModel {
        user_id: Set(user.id),
        provider_id: Set(provider.id),
        subject: Set(subject.to_owned()),
        created_at: Set(ms(at)),
        ..Default::default()
    }
    .insert(txn)
    .await
    .map_err(|err| match classify(&err) {
        Class::Duplicate => StoreError::conflict(format!(
            "this identity at \"{}\" was linked meanwhile: try again",
            provider.name
        )),
        _ => db_error(context(), err),
    })?;
    Ok(())
}

pub(super) async fn link_identity(
    store: &SqlStore,
    user: UserId,
    provider: &str,
    subject: &str,
    at: DateTime<Utc>,
) -> StoreResult<User> {
    let txn = store.begin().await?;
    let user = super::accounts::user_row(&txn, user, true).await?;
    let provider = provider_row(&txn, provider).await?;
    link(&txn, &user, &provider, subject, at).await?;
    txn.commit()
        .await
        .context(|| format!("failed to link an identity to user \"{}\"", user.name))?;
    Ok(super::accounts::to_user(user))
}

pub(super) async fn create_user_with_identity(
    store: &SqlStore,
    new: NewUser,
    provider: &str,
    subject: &str,
    at: DateTime<Utc>,
) -> StoreResult<User> {
    let txn = store.begin().await?;
    let provider = provider_row(&txn, provider).await?;
    let row = super::accounts::insert_user(&txn, new, at).await?;
    link(&txn, &row, &provider, subject, at).await?;
    txn.commit()
        .await
        .context(|| format!("failed to create user \"{}\"", row.name))?;
    Ok(super::accounts::to_user(row))
}

/// Unlinks `user`'s identity at `provider`; with `keep_user_way_in`, only when the user can
/// still log in after it.
pub(super) async fn unlink_identity(
    store: &SqlStore,
    user: UserId,
    provider: &str,
    keep_user_way_in: bool,
) -> StoreResult<()> {
    let txn = store.begin().await?;
    lock_login_rule(&txn).await?;
    let user = super::accounts::user_row(&txn, user, true).await?;
    let provider = provider_row(&txn, provider).await?;
    let context = || {
        format!(
            "failed to unlink the identity at \"{}\" of user \"{}\"",
            provider.name, user.name
        )
    };
    let deleted = user_identity::Entity::delete_many()
        .filter(user_identity::Column::UserId.eq(user.id))
        .filter(user_identity::Column::ProviderId.eq(provider.id))
        .exec(&txn)
        .await
        .context(context)?;
    if deleted.rows_affected == 0 {
        return Err(StoreError::not_found(format!(
            "user \"{}\" has no identity at \"{}\"",
            user.name, provider.name
        )));
    }
    if keep_user_way_in && !can_log_in(&txn, &user).await? {
        return Err(StoreError::conflict(format!(
            "user \"{}\" would have no way left to log in: set a password{} or link another \
             identity first",
            user.name,
            if local_login_in(&txn).await? {
                ""
            } else {
                " (and turn local login on)"
            }
        )));
    }
    keep_a_way_in(&txn).await?;
    txn.commit().await.context(context)
}

/// Whether `user` can log in: with a password while local login is on, or through an
/// identity at an enabled provider.
async fn can_log_in<C: ConnectionTrait>(db: &C, user: &user::Model) -> StoreResult<bool> {
    if user.password_hash.is_some() && local_login_in(db).await? {
        return Ok(true);
    }
    let enabled = enabled_providers(db).await?;
    let linked = user_identity::Entity::find()
        .filter(user_identity::Column::UserId.eq(user.id))
        .filter(user_identity::Column::ProviderId.is_in(enabled))
        .one(db)
        .await
        .context(|| format!("failed to read the identities of user \"{}\"", user.name))?;
    Ok(linked.is_some())
}

async fn enabled_providers<C: ConnectionTrait>(db: &C) -> StoreResult<Vec<i64>> {
    Ok(auth_provider::Entity::find()
        .filter(auth_provider::Column::Enabled.eq(true))
        .all(db)
        .await
        .context(|| "failed to list the identity providers")?
        .into_iter()
        .map(|row| row.id)
        .collect())
}

/// Locks the `local_login` setting's row (PostgreSQL, MySQL; SQLite's writers queue): every
/// transaction that could break the rule of [`keep_a_way_in`] takes it first, so that two
/// such changes at once are made one after the other, each seeing the other's result.
pub(super) async fn lock_login_rule<C: ConnectionTrait>(db: &C) -> StoreResult<()> {
    setting::Entity::find()
        .filter(setting::Column::Name.eq(LOCAL_LOGIN))
        .lock_exclusive()
        .one(db)
        .await
        .context(|| "failed to lock the login setting")?;
    Ok(())
}

/// `Conflict` when local login is off and no global admin has an identity at an enabled
/// provider: nobody could log in to turn it back on. Called after [`lock_login_rule`].
pub(super) async fn keep_a_way_in<C: ConnectionTrait>(db: &C) -> StoreResult<()> {
    if local_login_in(db).await? {
        return Ok(());
    }
    let context = || "failed to check that a global admin can still log in";
    let admins: Vec<i64> = user::Entity::find()
        .filter(user::Column::Admin.eq(true))
        .all(db)
        .await
        .context(context)?
        .into_iter()
        .map(|row| row.id)
        .collect();
    let enabled = enabled_providers(db).await?;
    let way_in = user_identity::Entity::find()
        .filter(user_identity::Column::UserId.is_in(admins))
        .filter(user_identity::Column::ProviderId.is_in(enabled))
        .one(db)
        .await
        .context(context)?;
    if way_in.is_none() {
        return Err(StoreError::conflict(
            "local login is off, and after this no global admin could log in through an \
             enabled identity provider: link a global admin's identity first (or turn local \
             login on)",
        ));
    }
    Ok(())
}

async fn local_login_in<C: ConnectionTrait>(db: &C) -> StoreResult<bool> {
    let row = setting::Entity::find()
        .filter(setting::Column::Name.eq(LOCAL_LOGIN))
        .one(db)
        .await
        .context(|| "failed to read whether local login is on")?;
    Ok(row.is_none_or(|row| row.value != "off"))
}

pub(super) async fn local_login(store: &SqlStore) -> StoreResult<bool> {
    local_login_in(store.db()).await
}

pub(super) async fn set_local_login(
    store: &SqlStore,
    enabled: bool,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    let context = || "failed to turn local login on or off";
    let txn = store.begin().await?;
    lock_login_rule(&txn).await?;
    let value = if enabled { "on" } else { "off" };
    let existing = setting::Entity::find()
        .filter(setting::Column::Name.eq(LOCAL_LOGIN))
        .one(&txn)
        .await
        .context(context)?;
    match existing {
        Some(row) => {
            let mut row = row.into_active_model();
            row.value = Set(value.to_owned());
            row.updated_at = Set(ms(at));
            row.update(&txn).await.context(context)?;
        }
        None => {
            setting::ActiveModel {
                name: Set(LOCAL_LOGIN.to_owned()),
                value: Set(value.to_owned()),
                updated_at: Set(ms(at)),
                ..Default::default()
            }
            .insert(&txn)
            .await
            .context(context)?;
        }
    }
    keep_a_way_in(&txn).await?;
    txn.commit().await.context(context)
}
