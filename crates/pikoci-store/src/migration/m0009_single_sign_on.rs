//! Single sign-on: identity providers, the identities linked to users, and server settings.

use sea_orm_migration::prelude::*;

use super::{Types, big, cascade, flag, id, index, string, string_null};

/// Adds `auth_providers`, `user_identities` and `settings`.
pub(super) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0009_single_sign_on"
    }
}

// The trait's signature elides the lifetime; spelling it out breaks the async-trait expansion.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let t = Types::new(manager.get_database_backend());
        manager
            .create_table(
                t.table("auth_providers")
                    .col(id())
                    .col(string("name", 255))
                    .col(string("display_name", 255))
                    // `oidc`, `oauth2` or `github`.
                    .col(string("kind", 16))
                    .col(string_null("issuer_url", 2048))
                    .col(string_null("auth_url", 2048))
                    .col(string_null("token_url", 2048))
                    .col(string_null("userinfo_url", 2048))
                    // Space-separated.
                    .col(string("scopes", 1024))
                    .col(string("client_id", 512))
                    // As the server wrote it: sealed with the master key when there is one.
                    .col(string("client_secret", 2048))
                    .col(string("username_claim", 255))
                    .col(string("subject_claim", 255))
                    .col(flag("enabled", true))
                    // Whether a first login of an unknown identity may create a user.
                    .col(flag("allow_signup", false))
                    .col(big("created_at"))
                    .col(big("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("auth_providers", &["name"], true))
            .await?;
        manager
            .create_table(
                t.table("user_identities")
                    .col(id())
                    .col(big("user_id"))
                    .col(big("provider_id"))
                    .col(string("subject", 255))
                    .col(big("created_at"))
                    .foreign_key(&mut cascade("user_identities", "user_id", "users"))
                    .foreign_key(&mut cascade(
                        "user_identities",
                        "provider_id",
                        "auth_providers",
                    ))
                    .to_owned(),
            )
            .await?;
        // One user per identity, one identity per user and provider.
        manager
            .create_index(index("user_identities", &["provider_id", "subject"], true))
            .await?;
        manager
            .create_index(index("user_identities", &["user_id", "provider_id"], true))
            .await?;
        manager
            .create_table(
                t.table("settings")
                    .col(id())
                    .col(string("name", 64))
                    .col(string("value", 1024))
                    .col(big("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("settings", &["name"], true))
            .await?;
        // The row every change of who can log in locks (`sql::sso`), so it always exists.
        let mut insert = Query::insert();
        insert
            .into_table("settings")
            .columns(["name", "value", "updated_at"])
            .values(["local_login".into(), "on".into(), 0i64.into()])
            .map_err(|err| DbErr::Migration(format!("cannot write the first settings: {err}")))?;
        manager.get_connection().execute(&insert).await?;
        Ok(())
    }
}
