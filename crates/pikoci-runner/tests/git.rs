//! The builtin `git` resource type, for real: its HCL scripts through the engine and real
//! processes against repositories served on loopback by `git daemon` and by `git
//! http-backend` (behind TLS), and the worker's provider API checks against recorded GitHub,
//! GitLab and Gitea responses served on loopback.

mod git {
    pub(crate) mod http;
    pub(crate) mod support;

    pub(crate) mod api;
    mod api_flow;
    mod https;
    mod plain;
}
