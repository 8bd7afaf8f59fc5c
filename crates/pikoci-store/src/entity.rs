//! The tables, as sea-orm entities (one module per table). Times are milliseconds since the Unix
//! epoch (UTC), JSON is stored as text: the same representation on every backend.
//!
//! The schema itself is created by the migrations (`crate::migration`), not derived from these.

pub(crate) mod team {
    //! `teams`: one row per team.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "teams")]
    pub(crate) struct Model {
        #[sea_orm(primary_key)]
        pub(crate) id: i64,
        pub(crate) name: String,
        pub(crate) created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod pipeline {
    //! `pipelines`: one row per pipeline; `dispatch_seq` is bumped to lock the row while claiming.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "pipelines")]
    pub(crate) struct Model {
        #[sea_orm(primary_key)]
        pub(crate) id: i64,
        pub(crate) team_id: i64,
        pub(crate) name: String,
        pub(crate) config: String,
        pub(crate) vars: String,
        pub(crate) model: String,
        pub(crate) paused: bool,
        pub(crate) public: bool,
        pub(crate) dispatch_seq: i64,
        pub(crate) created_at: i64,
        pub(crate) updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod pipeline_type {
    //! `pipeline_types`: the type blocks of a pipeline (resource, runner, secret, service and notification types) and its notifications.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "pipeline_types")]
    pub(crate) struct Model {
        #[sea_orm(primary_key)]
        pub(crate) id: i64,
        pub(crate) pipeline_id: i64,
        pub(crate) kind: String,
        pub(crate) name: String,
        pub(crate) definition: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod job {
    //! `jobs`: the state that outlives pipeline updates, plus the dispatch-relevant parts of the model.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "jobs")]
    pub(crate) struct Model {
        #[sea_orm(primary_key)]
        pub(crate) id: i64,
        pub(crate) pipeline_id: i64,
        pub(crate) name: String,
        pub(crate) position: i32,
        pub(crate) paused: bool,
        pub(crate) concurrency: i32,
        pub(crate) serial_groups: String,
        pub(crate) tags: String,
        pub(crate) disable_retry: bool,
        pub(crate) model: String,
        pub(crate) next_build_number: i32,
        pub(crate) created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod resource {
    //! `resources`: definition, webhook token, check schedule and lease, last check, pin.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "resources")]
    pub(crate) struct Model {
        #[sea_orm(primary_key)]
        pub(crate) id: i64,
        pub(crate) pipeline_id: i64,
        pub(crate) type_name: String,
        pub(crate) name: String,
        pub(crate) position: i32,
        pub(crate) model: String,
        pub(crate) check_interval: String,
        pub(crate) tags: String,
        pub(crate) webhook_token: String,
        pub(crate) next_check_at: Option<i64>,
        pub(crate) pinned_version_id: Option<i64>,
        pub(crate) pin_comment: Option<String>,
        pub(crate) pinned_by: Option<String>,
        pub(crate) pinned_at: Option<i64>,
        pub(crate) last_check_finished_at: Option<i64>,
        pub(crate) last_check_error: Option<String>,
        pub(crate) last_check_log: Option<String>,
        pub(crate) check_attempt: i32,
        pub(crate) check_worker_id: Option<String>,
        pub(crate) check_lease_expires_at: Option<i64>,
        pub(crate) created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod resource_version {
    //! `resource_versions`: unique per resource by the digest of the canonical JSON.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "resource_versions")]
    pub(crate) struct Model {
        #[sea_orm(primary_key)]
        pub(crate) id: i64,
        pub(crate) resource_id: i64,
        pub(crate) digest: String,
        pub(crate) version: String,
        pub(crate) metadata: String,
        pub(crate) created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod build {
    //! `builds`: number, status, dispatch state (attempt, worker, lease) and times.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "builds")]
    pub(crate) struct Model {
        #[sea_orm(primary_key)]
        pub(crate) id: i64,
        pub(crate) job_id: i64,
        pub(crate) pipeline_id: i64,
        pub(crate) team_id: i64,
        pub(crate) number: i32,
        pub(crate) retry: i32,
        pub(crate) retries: i32,
        pub(crate) retry_of: Option<i64>,
        pub(crate) status: String,
        pub(crate) inputs: String,
        pub(crate) error: Option<String>,
        pub(crate) trigger_resource_id: Option<i64>,
        pub(crate) trigger_version_id: Option<i64>,
        pub(crate) attempt: i32,
        pub(crate) worker_id: Option<String>,
        pub(crate) lease_expires_at: Option<i64>,
        pub(crate) requeues: i32,
        pub(crate) created_at: i64,
        pub(crate) started_at: Option<i64>,
        pub(crate) finished_at: Option<i64>,
        pub(crate) cancel_deadline: Option<i64>,
        pub(crate) versions_key: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod build_step {
    //! `build_steps`: one row per step per attempt.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "build_steps")]
    pub(crate) struct Model {
        #[sea_orm(primary_key)]
        pub(crate) id: i64,
        pub(crate) build_id: i64,
        pub(crate) attempt: i32,
        pub(crate) step: i32,
        pub(crate) name: String,
        pub(crate) kind: String,
        pub(crate) status: String,
        pub(crate) started_at: Option<i64>,
        pub(crate) finished_at: Option<i64>,
        pub(crate) parent: Option<i32>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod build_version {
    //! `build_versions`: which version each get or put of a build used (for `passed`).
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "build_versions")]
    pub(crate) struct Model {
        #[sea_orm(primary_key)]
        pub(crate) id: i64,
        pub(crate) build_id: i64,
        pub(crate) resource_id: i64,
        pub(crate) version_id: i64,
        pub(crate) step_name: String,
        pub(crate) version_usage: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod log_chunk {
    //! `log_chunks`: append-only, zstd-compressed, unique by (build, attempt, step, seq).
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "log_chunks")]
    pub(crate) struct Model {
        #[sea_orm(primary_key)]
        pub(crate) id: i64,
        pub(crate) build_id: i64,
        pub(crate) attempt: i32,
        pub(crate) step: i32,
        pub(crate) seq: i64,
        pub(crate) data: Vec<u8>,
        pub(crate) raw_len: i32,
        pub(crate) created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod worker {
    //! `workers`: the registry, upserted on every heartbeat.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "workers")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub(crate) worker_id: String,
        pub(crate) team_id: Option<i64>,
        pub(crate) tags: String,
        pub(crate) slots: i32,
        pub(crate) running: i32,
        pub(crate) version: String,
        pub(crate) hostname: String,
        pub(crate) first_seen_at: i64,
        pub(crate) last_heartbeat_at: i64,
        pub(crate) exclusive: bool,
        pub(crate) draining: bool,
        pub(crate) sealing_key: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod trigger_event {
    //! `trigger_events`: team-scoped streams, one per resource canonical name.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "trigger_events")]
    pub(crate) struct Model {
        #[sea_orm(primary_key)]
        pub(crate) id: i64,
        pub(crate) team_id: i64,
        pub(crate) resource: String,
        pub(crate) version: String,
        pub(crate) created_at: i64,
        pub(crate) dedupe_key: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod approval_vote {
    //! `approval_votes`: one row per person approving a build waiting for approval.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "approval_votes")]
    pub(crate) struct Model {
        #[sea_orm(primary_key)]
        pub(crate) id: i64,
        pub(crate) build_id: i64,
        pub(crate) voter: String,
        pub(crate) created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod job_tag {
    //! `job_tags`: one row per tag of a job (the claim matches them against a worker's tags).
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "job_tags")]
    pub(crate) struct Model {
        #[sea_orm(primary_key)]
        pub(crate) id: i64,
        pub(crate) job_id: i64,
        pub(crate) tag: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod job_serial_group {
    //! `job_serial_groups`: one row per serial group of a job, with the job's pipeline (groups
    //! are per pipeline).
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "job_serial_groups")]
    pub(crate) struct Model {
        #[sea_orm(primary_key)]
        pub(crate) id: i64,
        pub(crate) job_id: i64,
        pub(crate) pipeline_id: i64,
        pub(crate) name: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod team_secret {
    //! `team_secrets`: the built-in secret store's entries of a team (`sql::secrets` reads and
    //! writes them; this entity serves export and import).
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "team_secrets")]
    pub(crate) struct Model {
        #[sea_orm(primary_key)]
        pub(crate) id: i64,
        pub(crate) team_id: i64,
        pub(crate) name: String,
        pub(crate) kind: String,
        /// A `secret` entry's ciphertext, or a `plain` entry's UTF-8.
        pub(crate) value: Vec<u8>,
        pub(crate) created_at: i64,
        pub(crate) updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod pipeline_secret {
    //! `pipeline_secrets`: the built-in secret store's entries of a pipeline.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "pipeline_secrets")]
    pub(crate) struct Model {
        #[sea_orm(primary_key)]
        pub(crate) id: i64,
        pub(crate) pipeline_id: i64,
        pub(crate) name: String,
        pub(crate) kind: String,
        /// A `secret` entry's ciphertext, or a `plain` entry's UTF-8.
        pub(crate) value: Vec<u8>,
        pub(crate) created_at: i64,
        pub(crate) updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod user {
    //! `users`: one row per user; `password_hash` is read only to log in (`sql::accounts`).
    use sea_orm::entity::prelude::*;

    #[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "users")]
    pub(crate) struct Model {
        #[sea_orm(primary_key)]
        pub(crate) id: i64,
        pub(crate) name: String,
        pub(crate) full_name: String,
        /// An argon2id PHC string or a bcrypt hash.
        pub(crate) password_hash: Option<String>,
        pub(crate) admin: bool,
        pub(crate) must_change_password: bool,
        pub(crate) created_at: i64,
        pub(crate) updated_at: i64,
    }

    impl std::fmt::Debug for Model {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Model")
                .field("id", &self.id)
                .field("name", &self.name)
                .field("admin", &self.admin)
                .finish_non_exhaustive()
        }
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod team_member {
    //! `team_members`: a user's role in a team.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "team_members")]
    pub(crate) struct Model {
        #[sea_orm(primary_key)]
        pub(crate) id: i64,
        pub(crate) team_id: i64,
        pub(crate) user_id: i64,
        pub(crate) role: String,
        pub(crate) created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod session {
    //! `sessions`: login sessions, by the SHA-256 of their token (not exported: an import
    //! ends every session).
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "sessions")]
    pub(crate) struct Model {
        #[sea_orm(primary_key)]
        pub(crate) id: i64,
        pub(crate) user_id: i64,
        pub(crate) token_hash: String,
        pub(crate) created_at: i64,
        pub(crate) expires_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod api_token {
    //! `api_tokens`: API tokens, by the SHA-256 of their value.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "api_tokens")]
    pub(crate) struct Model {
        #[sea_orm(primary_key)]
        pub(crate) id: i64,
        pub(crate) user_id: i64,
        pub(crate) name: String,
        pub(crate) token_hash: String,
        pub(crate) prefix: String,
        pub(crate) team_id: Option<i64>,
        pub(crate) role: Option<String>,
        pub(crate) expires_at: Option<i64>,
        pub(crate) last_used_at: Option<i64>,
        pub(crate) created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod worker_key {
    //! `worker_keys`: the keys of the servers, the global worker token and each team's.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "worker_keys")]
    pub(crate) struct Model {
        #[sea_orm(primary_key)]
        pub(crate) id: i64,
        pub(crate) scope: String,
        pub(crate) team_id: Option<i64>,
        pub(crate) value: String,
        pub(crate) created_at: i64,
        pub(crate) updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod audit_entry {
    //! `audit_log`: who did what in a team.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_log")]
    pub(crate) struct Model {
        #[sea_orm(primary_key)]
        pub(crate) id: i64,
        pub(crate) team_id: i64,
        pub(crate) actor: String,
        pub(crate) action: String,
        pub(crate) target_type: String,
        pub(crate) target_name: String,
        pub(crate) pipeline: Option<String>,
        pub(crate) details: String,
        pub(crate) created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod auth_provider {
    //! `auth_providers`: the identity providers of single sign-on.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "auth_providers")]
    pub(crate) struct Model {
        #[sea_orm(primary_key)]
        pub(crate) id: i64,
        pub(crate) name: String,
        pub(crate) display_name: String,
        pub(crate) kind: String,
        pub(crate) issuer_url: Option<String>,
        pub(crate) auth_url: Option<String>,
        pub(crate) token_url: Option<String>,
        pub(crate) userinfo_url: Option<String>,
        pub(crate) scopes: String,
        pub(crate) client_id: String,
        pub(crate) client_secret: String,
        pub(crate) username_claim: String,
        pub(crate) subject_claim: String,
        pub(crate) enabled: bool,
        pub(crate) allow_signup: bool,
        pub(crate) created_at: i64,
        pub(crate) updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod user_identity {
    //! `user_identities`: a user's identity at a provider.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "user_identities")]
    pub(crate) struct Model {
        #[sea_orm(primary_key)]
        pub(crate) id: i64,
        pub(crate) user_id: i64,
        pub(crate) provider_id: i64,
        pub(crate) subject: String,
        pub(crate) created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod setting {
    //! `settings`: the server's settings changed at run time (`local_login`).
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "settings")]
    pub(crate) struct Model {
        #[sea_orm(primary_key)]
        pub(crate) id: i64,
        pub(crate) name: String,
        pub(crate) value: String,
        pub(crate) updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
