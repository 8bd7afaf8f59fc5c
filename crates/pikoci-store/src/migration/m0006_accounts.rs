//! Who may use the server: users, their roles in teams, login sessions and API tokens.

use sea_orm_migration::prelude::*;

use super::{Types, big, big_null, cascade, flag, id, index, string, string_null};

/// Adds `users`, `team_members`, `sessions` and `api_tokens`.
pub(super) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0006_accounts"
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
                t.table("users")
                    .col(id())
                    .col(string("name", 255))
                    .col(string("full_name", 255))
                    // An argon2id PHC string or a bcrypt hash; NULL: no password.
                    .col(string_null("password_hash", 255))
                    .col(flag("admin", false))
                    .col(flag("must_change_password", false))
                    .col(big("created_at"))
                    .col(big("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("users", &["name"], true))
            .await?;
        manager
            .create_table(
                t.table("team_members")
                    .col(id())
                    .col(big("team_id"))
                    .col(big("user_id"))
                    .col(string("role", 16))
                    .col(big("created_at"))
                    .foreign_key(&mut cascade("team_members", "team_id", "teams"))
                    .foreign_key(&mut cascade("team_members", "user_id", "users"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("team_members", &["team_id", "user_id"], true))
            .await?;
        manager
            .create_index(index("team_members", &["user_id"], false))
            .await?;
        manager
            .create_table(
                t.table("sessions")
                    .col(id())
                    .col(big("user_id"))
                    // The SHA-256 of the token, in hex: the token itself is never stored.
                    .col(string("token_hash", 64))
                    .col(big("created_at"))
                    .col(big("expires_at"))
                    .foreign_key(&mut cascade("sessions", "user_id", "users"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("sessions", &["token_hash"], true))
            .await?;
        manager
            .create_index(index("sessions", &["user_id"], false))
            .await?;
        manager
            .create_table(
                t.table("api_tokens")
                    .col(id())
                    .col(big("user_id"))
                    .col(string("name", 255))
                    .col(string("token_hash", 64))
                    .col(string("prefix", 16))
                    // A team token's team and role; NULL for a personal token.
                    .col(big_null("team_id"))
                    .col(string_null("role", 16))
                    .col(big_null("expires_at"))
                    .col(big_null("last_used_at"))
                    .col(big("created_at"))
                    .foreign_key(&mut cascade("api_tokens", "user_id", "users"))
                    .foreign_key(&mut cascade("api_tokens", "team_id", "teams"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("api_tokens", &["token_hash"], true))
            .await?;
        manager
            .create_index(index("api_tokens", &["user_id", "name"], true))
            .await?;
        manager
            .create_index(index("api_tokens", &["team_id"], false))
            .await?;
        Ok(())
    }
}
