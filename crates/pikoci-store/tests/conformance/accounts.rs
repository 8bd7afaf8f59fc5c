//! Users, memberships, sessions and API tokens (`AccountStore` on the SQL store).

use chrono::Duration;
use pikoci_core::ErrorKind;
use pikoci_core::secrets::Secret;
use pikoci_core::store::{
    AccountStore, AuthProvider, NewApiToken, NewSession, NewUser, PasswordChange, Role, TokenHash,
    UserUpdate,
};

use super::{Fixture, at};

fn t0() -> chrono::DateTime<chrono::Utc> {
    at(0)
}

fn new_user(name: &str, admin: bool) -> NewUser {
    NewUser {
        name: name.to_owned(),
        full_name: format!("{name} full"),
        password_hash: Some(Secret::new(format!("$argon2id$hash-of-{name}"))),
        admin,
        must_change_password: false,
    }
}

fn hash(n: u8) -> TokenHash {
    TokenHash(format!("{n:064x}"))
}

pub(crate) async fn users_are_unique_and_the_last_admin_is_kept(
    fx: &Fixture,
) -> anyhow::Result<()> {
    let accounts: &dyn AccountStore = &fx.sql;
    assert_eq!(accounts.count_users().await?, 0);
    let root = accounts.create_user(new_user("root", true), t0()).await?;
    assert!(root.admin && root.has_password);
    let taken = accounts
        .create_user(new_user("root", false), t0())
        .await
        .unwrap_err();
    assert_eq!(taken.kind(), ErrorKind::Conflict, "{taken}");
    let invalid = accounts
        .create_user(new_user("Bob Smith", false), t0())
        .await
        .unwrap_err();
    assert_eq!(invalid.kind(), ErrorKind::InvalidInput, "{invalid}");
    let bob = accounts
        .create_user(
            NewUser {
                password_hash: None,
                ..new_user("bob", false)
            },
            t0(),
        )
        .await?;
    assert!(!bob.has_password);
    let (found, password) = accounts.login("root").await?;
    assert_eq!(found, root);
    assert_eq!(password.unwrap().expose(), "$argon2id$hash-of-root");
    assert_eq!(accounts.login("bob").await?.1, None);
    assert_eq!(
        accounts.login("nobody").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let names: Vec<_> = accounts
        .list_users()
        .await?
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, ["bob", "root"]);

    // The last global admin stays one, and stays.
    let demote = accounts
        .update_user(
            root.id,
            UserUpdate {
                admin: Some(false),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(demote.kind(), ErrorKind::Conflict, "{demote}");
    assert_eq!(
        accounts.delete_user(root.id).await.unwrap_err().kind(),
        ErrorKind::Conflict
    );
    let bob = accounts
        .update_user(
            bob.id,
            UserUpdate {
                admin: Some(true),
                full_name: Some("Bob B.".to_owned()),
                name: Some("robert".to_owned()),
            },
        )
        .await?;
    assert_eq!(
        (bob.name.as_str(), bob.full_name.as_str(), bob.admin),
        ("robert", "Bob B.", true)
    );
    let clash = accounts
        .update_user(
            bob.id,
            UserUpdate {
                name: Some("root".to_owned()),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(clash.kind(), ErrorKind::Conflict, "{clash}");
    accounts.delete_user(root.id).await?;
    assert_eq!(accounts.count_users().await?, 1);
    Ok(())
}

pub(crate) async fn teams_keep_an_admin_and_tokens_go_with_membership(
    fx: &Fixture,
) -> anyhow::Result<()> {
    let accounts: &dyn AccountStore = &fx.sql;
    let team = fx.s().create_team("alpha", t0()).await?;
    let other = fx.s().create_team("beta", t0()).await?;
    let ann = accounts.create_user(new_user("ann", false), t0()).await?;
    let ben = accounts.create_user(new_user("ben", false), t0()).await?;
    // A team without admins may get members of any role.
    accounts
        .set_member(team.id, ben.id, Role::Write, t0())
        .await?;
    accounts
        .set_member(team.id, ann.id, Role::Admin, t0())
        .await?;
    accounts
        .set_member(other.id, ann.id, Role::Read, t0())
        .await?;
    // Then its last admin cannot step down or leave.
    let step_down = accounts
        .set_member(team.id, ann.id, Role::Maintain, t0())
        .await
        .unwrap_err();
    assert_eq!(step_down.kind(), ErrorKind::Conflict, "{step_down}");
    assert!(step_down.to_string().contains("no admins"), "{step_down}");
    assert_eq!(
        accounts
            .remove_member(team.id, ann.id)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Conflict
    );
    let members: Vec<_> = accounts
        .team_members(team.id)
        .await?
        .into_iter()
        .map(|m| (m.user_name, m.role))
        .collect();
    assert_eq!(
        members,
        [
            ("ann".to_owned(), Role::Admin),
            ("ben".to_owned(), Role::Write)
        ]
    );
    let teams: Vec<_> = accounts
        .memberships(ann.id)
        .await?
        .into_iter()
        .map(|m| (m.team_name, m.role))
        .collect();
    assert_eq!(
        teams,
        [
            ("alpha".to_owned(), Role::Admin),
            ("beta".to_owned(), Role::Read)
        ]
    );

    // Ben's team token for alpha goes when ben leaves alpha; his personal one stays.
    let team_token = accounts
        .create_api_token(NewApiToken {
            user: ben.id,
            name: "deploy".to_owned(),
            token_hash: hash(1),
            prefix: "pko_00000000".to_owned(),
            team: Some((team.id, Role::Write)),
            expires_at: Some(t0() + Duration::days(30)),
            created_at: t0(),
        })
        .await?;
    assert_eq!(
        team_token.team,
        Some((team.id, "alpha".to_owned(), Role::Write))
    );
    accounts
        .create_api_token(NewApiToken {
            user: ben.id,
            name: "personal".to_owned(),
            token_hash: hash(2),
            prefix: "pko_00000000".to_owned(),
            team: None,
            expires_at: None,
            created_at: t0(),
        })
        .await?;
    let same_name = accounts
        .create_api_token(NewApiToken {
            user: ben.id,
            name: "deploy".to_owned(),
            token_hash: hash(3),
            prefix: "pko_00000000".to_owned(),
            team: None,
            expires_at: None,
            created_at: t0(),
        })
        .await
        .unwrap_err();
    assert_eq!(same_name.kind(), ErrorKind::Conflict, "{same_name}");
    let (found, owner) = accounts.api_token(&hash(1)).await?;
    assert_eq!((found.id, owner.id), (team_token.id, ben.id));
    accounts
        .touch_api_token(found.id, t0() + Duration::minutes(5))
        .await?;
    assert_eq!(
        accounts.api_token(&hash(1)).await?.0.last_used_at,
        Some(t0() + Duration::minutes(5))
    );
    accounts.remove_member(team.id, ben.id).await?;
    assert_eq!(
        accounts.api_token(&hash(1)).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let left: Vec<_> = accounts
        .list_api_tokens(ben.id)
        .await?
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(left, ["personal"]);
    assert_eq!(
        accounts
            .remove_member(team.id, ben.id)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    // Deleting a token is its owner's business only.
    let personal = accounts.api_token(&hash(2)).await?.0;
    assert_eq!(
        accounts
            .delete_api_token(ann.id, personal.id)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    accounts.delete_api_token(ben.id, personal.id).await?;
    // A deleted team takes its memberships with it.
    fx.s().delete_team(other.id).await?;
    assert_eq!(accounts.memberships(ann.id).await?.len(), 1);
    // Ann is alpha's only admin: she cannot be deleted until alpha has another.
    let last = accounts.delete_user(ann.id).await.unwrap_err();
    assert_eq!(last.kind(), ErrorKind::Conflict, "{last}");
    accounts
        .set_member(team.id, ben.id, Role::Admin, t0())
        .await?;
    accounts.delete_user(ann.id).await?;
    Ok(())
}

pub(crate) async fn sessions_end_with_a_password_change_or_their_user(
    fx: &Fixture,
) -> anyhow::Result<()> {
    let accounts: &dyn AccountStore = &fx.sql;
    let cid = accounts.create_user(new_user("cid", false), t0()).await?;
    for n in 1..=3 {
        accounts
            .create_session(NewSession {
                user: cid.id,
                token_hash: hash(n),
                created_at: t0(),
                expires_at: t0() + Duration::hours(i64::from(n)),
            })
            .await?;
    }
    let session = accounts.session(&hash(2)).await?;
    assert_eq!(session.user.id, cid.id);
    assert_eq!(session.expires_at, t0() + Duration::hours(2));
    // Expired sessions go when asked.
    assert_eq!(
        accounts
            .delete_expired_sessions(t0() + Duration::minutes(90))
            .await?,
        1
    );
    assert_eq!(
        accounts.session(&hash(1)).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    // A password change keeps the session that made it, ends the others, and keeps tokens.
    accounts
        .create_api_token(NewApiToken {
            user: cid.id,
            name: "t".to_owned(),
            token_hash: hash(9),
            prefix: "pko_00000000".to_owned(),
            team: None,
            expires_at: None,
            created_at: t0(),
        })
        .await?;
    accounts
        .set_password(PasswordChange {
            user: cid.id,
            password_hash: Secret::new("$argon2id$new"),
            must_change_password: false,
            keep_session: Some(hash(3)),
            revoke_tokens: false,
        })
        .await?;
    assert_eq!(
        accounts.session(&hash(2)).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    accounts.session(&hash(3)).await?;
    accounts.api_token(&hash(9)).await?;
    assert_eq!(
        accounts.login("cid").await?.1.unwrap().expose(),
        "$argon2id$new"
    );
    // An admin's reset ends everything, tokens too, and asks for a new password.
    accounts
        .set_password(PasswordChange {
            user: cid.id,
            password_hash: Secret::new("$argon2id$reset"),
            must_change_password: true,
            keep_session: None,
            revoke_tokens: true,
        })
        .await?;
    assert!(accounts.session(&hash(3)).await.is_err());
    assert!(accounts.api_token(&hash(9)).await.is_err());
    assert!(accounts.user("cid").await?.must_change_password);
    // A logout ends one session; a deleted user, all of them.
    accounts
        .create_session(NewSession {
            user: cid.id,
            token_hash: hash(4),
            created_at: t0(),
            expires_at: t0() + Duration::hours(1),
        })
        .await?;
    accounts.delete_session(&hash(4)).await?;
    accounts.delete_session(&hash(4)).await?;
    assert!(accounts.session(&hash(4)).await.is_err());
    accounts
        .create_session(NewSession {
            user: cid.id,
            token_hash: hash(5),
            created_at: t0(),
            expires_at: t0() + Duration::hours(1),
        })
        .await?;
    accounts.delete_user(cid.id).await?;
    assert!(accounts.session(&hash(5)).await.is_err());
    Ok(())
}

pub(crate) async fn worker_keys_are_made_once_replaced_and_go_with_their_team(
    fx: &Fixture,
) -> anyhow::Result<()> {
    use pikoci_core::store::WorkerKeyScope;
    let store = fx.s();
    assert_eq!(store.worker_key(WorkerKeyScope::Global).await?, None);
    // The first value stays: a second server starting at once gets the first one's.
    let first = Secret::new("clear:one");
    let made = store
        .create_worker_key(WorkerKeyScope::Global, &first, t0())
        .await?;
    assert_eq!(made, first);
    let again = store
        .create_worker_key(WorkerKeyScope::Global, &Secret::new("clear:two"), t0())
        .await?;
    assert_eq!(again, first);
    // The server's own key is another row.
    store
        .create_worker_key(WorkerKeyScope::Server, &Secret::new("clear:server"), t0())
        .await?;
    store
        .replace_worker_key(WorkerKeyScope::Global, &Secret::new("clear:three"), t0())
        .await?;
    assert_eq!(
        store.worker_key(WorkerKeyScope::Global).await?,
        Some(Secret::new("clear:three"))
    );
    assert_eq!(
        store.worker_key(WorkerKeyScope::Server).await?,
        Some(Secret::new("clear:server"))
    );
    // A team's key goes with the team; none can be stored for a team that does not exist.
    let team = store.create_team("web", t0()).await?;
    let scope = WorkerKeyScope::Team(team.id);
    store
        .replace_worker_key(scope, &Secret::new("clear:web"), t0())
        .await?;
    assert_eq!(
        store.worker_key(scope).await?,
        Some(Secret::new("clear:web"))
    );
    store.delete_team(team.id).await?;
    assert_eq!(store.worker_key(scope).await?, None);
    let missing = store
        .replace_worker_key(scope, &Secret::new("clear:gone"), t0())
        .await
        .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound, "{missing}");
    Ok(())
}

fn provider(name: &str, enabled: bool) -> AuthProvider {
    AuthProvider {
        name: name.to_owned(),
        display_name: format!("{name} login"),
        kind: "oidc".to_owned(),
        issuer_url: Some(format!("https://{name}.example.com")),
        auth_url: None,
        token_url: None,
        userinfo_url: None,
        scopes: vec!["openid".into(), "email".into()],
        client_id: "pikoci".to_owned(),
        client_secret: Secret::new("sealed:abc"),
        username_claim: "preferred_username".to_owned(),
        subject_claim: "sub".to_owned(),
        enabled,
        allow_signup: true,
        created_at: t0(),
        updated_at: t0(),
    }
}

/// Single sign-on: providers are created and replaced by name; an identity belongs to one
/// user, and a user has one identity per provider; nobody is locked out by an unlink, and
/// local login is turned off only while a global admin can log in through a provider.
pub(crate) async fn identities_are_linked_once_and_nobody_is_locked_out(
    fx: &Fixture,
) -> anyhow::Result<()> {
    let accounts: &dyn AccountStore = &fx.sql;
    assert!(accounts.local_login().await?, "on until turned off");
    assert!(
        accounts
            .put_auth_provider(&provider("idp", true), t0())
            .await?
    );
    let mut replaced = provider("idp", true);
    replaced.display_name = "Company".into();
    replaced.scopes = vec!["openid".into()];
    assert!(!accounts.put_auth_provider(&replaced, at(5)).await?);
    let stored = accounts.auth_provider("idp").await?;
    assert_eq!(stored.display_name, "Company");
    assert_eq!(stored.scopes, ["openid"]);
    assert_eq!(stored.client_secret.expose(), "sealed:abc");
    assert_eq!((stored.created_at, stored.updated_at), (t0(), at(5)));
    accounts
        .put_auth_provider(&provider("other", true), t0())
        .await?;
    assert_eq!(accounts.auth_providers().await?.len(), 2);
    let err = accounts
        .put_auth_provider(&provider("Not Canonical", true), t0())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");

    let root = accounts.create_user(new_user("root", true), t0()).await?;
    // A first login: the user and the identity together.
    let mut carol = new_user("carol", false);
    carol.password_hash = None;
    let carol = accounts
        .create_user_with_identity(carol, "idp", "sub-carol", t0())
        .await?;
    assert!(!carol.has_password);
    let found = accounts.identity_user("idp", "sub-carol").await?;
    assert_eq!(found.map(|u| u.name), Some("carol".to_owned()));
    assert!(accounts.identity_user("idp", "nobody").await?.is_none());
    // The identity is carol's: nobody else gets it, nor another user with carol's name.
    let err = accounts
        .link_identity(root.id, "idp", "sub-carol", t0())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    let err = accounts
        .create_user_with_identity(new_user("dave", false), "idp", "sub-carol", t0())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert_eq!(
        accounts.user("dave").await.unwrap_err().kind(),
        ErrorKind::NotFound,
        "the user of a failed first login is not kept"
    );
    // Linking again is no change; a second identity at the same provider is refused.
    accounts
        .link_identity(root.id, "idp", "sub-root", at(1))
        .await?;
    accounts
        .link_identity(root.id, "idp", "sub-root", at(2))
        .await?;
    let err = accounts
        .link_identity(root.id, "idp", "sub-root-2", t0())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    // What an identity means cannot change under it: another issuer's `sub-root` is not root.
    let mut moved = provider("idp", true);
    moved.issuer_url = Some("https://elsewhere.example.com".into());
    let err = accounts.put_auth_provider(&moved, t0()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    let mut renamed = provider("idp", true);
    renamed.display_name = "Still the same issuer".into();
    accounts.put_auth_provider(&renamed, t0()).await?;
    // `system` names the server in the audit log: no user takes it.
    let err = accounts
        .create_user(new_user("system", false), t0())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let identities = accounts.identities(root.id).await?;
    assert_eq!(identities.len(), 1);
    assert_eq!(identities[0].subject, "sub-root");
    assert_eq!(identities[0].created_at, at(1));
    // Carol has no password: her only identity stays.
    let err = accounts.unlink_identity(carol.id, "idp").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    accounts
        .link_identity(carol.id, "other", "c2", t0())
        .await?;
    accounts.unlink_identity(carol.id, "idp").await?;
    // An admin may take away a user's last way in.
    accounts.delete_identity(carol.id, "other").await?;
    assert!(accounts.identities(carol.id).await?.is_empty());
    assert_eq!(
        accounts
            .delete_identity(carol.id, "other")
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    accounts
        .link_identity(carol.id, "other", "c2", t0())
        .await?;
    assert_eq!(
        accounts
            .unlink_identity(carol.id, "idp")
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );

    // Local login off needs a global admin with an identity at an enabled provider.
    accounts.unlink_identity(root.id, "idp").await?;
    let err = accounts.set_local_login(false, t0()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(
        accounts.local_login().await?,
        "a refused change changes nothing"
    );
    accounts
        .link_identity(root.id, "idp", "sub-root", t0())
        .await?;
    accounts.set_local_login(false, t0()).await?;
    assert!(!accounts.local_login().await?);
    // While it is off, the admin's way in stays: no unlink, no disabling, no deleting it.
    let err = accounts.unlink_identity(root.id, "idp").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    let err = accounts
        .put_auth_provider(&provider("idp", false), t0())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(accounts.auth_provider("idp").await?.enabled);
    let err = accounts.delete_auth_provider("idp").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    // Another provider goes, with its identities.
    accounts.delete_auth_provider("other").await?;
    assert!(accounts.identities(carol.id).await?.is_empty());
    assert_eq!(
        accounts
            .delete_auth_provider("other")
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    accounts.set_local_login(true, t0()).await?;
    // A deleted user's identities go with the user.
    accounts
        .link_identity(carol.id, "idp", "sub-carol", t0())
        .await?;
    accounts.delete_user(carol.id).await?;
    assert!(accounts.identity_user("idp", "sub-carol").await?.is_none());
    Ok(())
}
