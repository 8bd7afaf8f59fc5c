//! Saved servers ("targets"): `pikoci login` and `pikoci target`.
//!
//! They live in `$XDG_CONFIG_HOME/pikoci/targets.toml` (`~/.config/pikoci/targets.toml` by
//! default), written with mode 0600 because a target may hold a token:
//!
//! ```toml
//! current = "local"
//!
//! [targets.local]
//! server = "http://127.0.0.1:8080"
//! team = "main"
//! token = "..."
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use pikoci_client::Client;
use pikoci_core::secrets::Secret;
use serde::{Deserialize, Serialize};

use super::{Exit, UsageError};
use crate::output;

/// The saved targets.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Targets {
    /// The target commands use when none is named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    current: Option<String>,
    #[serde(default)]
    targets: BTreeMap<String, Target>,
}

/// One saved server.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Target {
    /// Its address.
    pub(crate) server: String,
    /// The team commands act in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) team: Option<String>,
    /// The token sent with every request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) token: Option<String>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("server", &self.server)
            .field("team", &self.team)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The file of the targets.
fn file() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|dir| !dir.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(
            std::env::var_os("HOME")
                .filter(|home| !home.is_empty())
                .context("neither XDG_CONFIG_HOME nor HOME is set: cannot find the targets file")?,
        )
        .join(".config"),
    };
    Ok(base.join("pikoci").join("targets.toml"))
}

impl Targets {
    /// The saved targets (none when the file does not exist).
    pub(crate) fn load() -> anyhow::Result<Targets> {
        let path = file()?;
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).with_context(|| {
                format!(
                    "{} is not a valid targets file; fix it or delete it and log in again",
                    path.display()
                )
            }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Targets::default()),
            Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes the file, readable by its owner only (its directory too, when it is created),
    /// replacing it at once: a new file with a random name in the same directory, renamed
    /// over the old one (removed if anything fails before).
    pub(crate) fn save(&self) -> anyhow::Result<PathBuf> {
        use std::os::unix::fs::DirBuilderExt;
        let path = file()?;
        let dir = path.parent().context("the targets file has a directory")?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let text = toml::to_string(self).context("cannot write the targets as TOML")?;
        let write = || -> std::io::Result<()> {
            // Created with mode 0600.
            let mut out = tempfile::NamedTempFile::new_in(dir)?;
            out.write_all(text.as_bytes())?;
            out.as_file().sync_all()?;
            out.persist(&path)?;
            Ok(())
        };
        write().with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }

    /// The target named, else the current one.
    pub(crate) fn chosen(&self, name: Option<&str>) -> anyhow::Result<(String, &Target)> {
        let name = match name.or(self.current.as_deref()) {
            Some(name) => name,
            None => {
                return Err(UsageError(
                    "no server to talk to: run `pikoci login --server http://HOST:PORT` once, \
                     or pass --server (or set PIKOCI_SERVER)"
                        .to_owned(),
                )
                .into());
            }
        };
        match self.targets.get(name) {
            Some(target) => Ok((name.to_owned(), target)),
            None => Err(UsageError(format!(
                "no target named \"{name}\"; saved targets: {}",
                self.names()
            ))
            .into()),
        }
    }

    /// Forgets the token of the target named (the current one by default); its name.
    pub(crate) fn forget_token(&mut self, name: Option<&str>) -> anyhow::Result<String> {
        let (name, _) = self.chosen(name)?;
        if let Some(target) = self.targets.get_mut(&name) {
            target.token = None;
        }
        Ok(name)
    }

    fn names(&self) -> String {
        if self.targets.is_empty() {
            "none (save one with `pikoci login --server URL --name NAME`)".to_owned()
        } else {
            self.targets.keys().cloned().collect::<Vec<_>>().join(", ")
        }
    }
}

/// The flags of `pikoci login`.
#[derive(Debug, clap::Args)]
pub(crate) struct LoginArgs {
    /// The server's address, e.g. http://127.0.0.1:8080 or https://ci.example.com.
    #[arg(long, short = 's', env = "PIKOCI_SERVER", value_name = "URL")]
    server: String,

    /// The name to save it under; it becomes the current target.
    #[arg(long, short = 'n', default_value = "default", value_name = "NAME")]
    name: String,

    /// The team commands act in.
    #[arg(long, default_value = "main", value_name = "NAME")]
    team: String,

    /// Log in as this user: the password is asked for (hidden), or read from standard input
    /// with --password-stdin.
    #[arg(long, short = 'u', value_name = "USER", conflicts_with = "token_stdin")]
    username: Option<String>,

    /// Read the password of --username from standard input (for scripts).
    #[arg(long, requires = "username")]
    password_stdin: bool,

    /// Read an API token (`pko_...`) from standard input instead of logging in with a
    /// password.
    #[arg(long)]
    token_stdin: bool,
}

/// `pikoci login`: logs in (with a password or a token), checks that the server knows the team,
/// then saves it.
pub(crate) fn login(args: LoginArgs) -> ExitCode {
    let result = (|| -> anyhow::Result<Exit> {
        let password = match &args.username {
            Some(user) => Some(super::prompt::secret(
                &format!("Password of {user} on {}: ", args.server),
                args.password_stdin,
                "--password-stdin",
            )?),
            None => None,
        };
        let token = if args.token_stdin {
            let mut token = String::new();
            std::io::stdin()
                .read_line(&mut token)
                .context("cannot read the token from standard input")?;
            let token = token.trim().to_owned();
            if token.is_empty() {
                return Err(UsageError("standard input held no token".to_owned()).into());
            }
            Some(token)
        } else {
            None
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let (server, token, must_change) = runtime.block_on(async {
            let mut token = token;
            let mut must_change = false;
            if let (Some(user), Some(password)) = (&args.username, password) {
                let client = Client::new(&args.server, None)
                    .await
                    .map_err(|err| UsageError(err.to_string()))?;
                let answer = client
                    .post(
                        "/login",
                        &serde_json::json!({"username": user, "password": password.expose()}),
                    )
                    .await
                    .with_context(|| format!("cannot log in to {} as {user}", client.server()))?;
                must_change = answer.data["user"]["must_change_password"] == true;
                token = answer.data["token"].as_str().map(str::to_owned);
            }
            let client = Client::new(&args.server, token.clone().map(Secret::new))
                .await
                .map_err(|err| UsageError(err.to_string()))?;
            if must_change {
                return Ok::<_, anyhow::Error>((client.server().to_owned(), token, true));
            }
            // The team itself (a team token may read its team, not the list of teams).
            let team = client
                .get(&pikoci_client::path(&["teams", &args.team]))
                .await;
            if let Err(error) = team {
                let refused = matches!(
                    &error,
                    pikoci_client::ClientError::Api {
                        status: 403 | 404,
                        ..
                    }
                );
                if let pikoci_client::ClientError::Api { status: 401, .. } = &error {
                    return Err(anyhow::Error::new(error)
                        .context(format!("{} refused the credentials", client.server())));
                }
                // The session made above is of no use: end it.
                if args.username.is_some() {
                    let _ = client.post("/logout", &serde_json::json!({})).await;
                }
                if refused {
                    return Err(UsageError(format!(
                        "{} has no team \"{}\" that you are a member of; pass --team with one \
                         of your teams",
                        client.server(),
                        args.team
                    ))
                    .into());
                }
                return Err(anyhow::Error::new(error).context(format!(
                    "{} does not answer as a PikoCI server",
                    client.server()
                )));
            }
            Ok::<_, anyhow::Error>((client.server().to_owned(), token, false))
        })?;
        let mut targets = Targets::load()?;
        targets.targets.insert(
            args.name.clone(),
            Target {
                server: server.clone(),
                team: Some(args.team.clone()),
                token,
            },
        );
        targets.current = Some(args.name.clone());
        let path = targets.save()?;
        output::stdout(&format!(
            "saved {server} (team {}) as target \"{}\", now the current one, in {}\n",
            args.team,
            args.name,
            path.display()
        ))?;
        if must_change {
            output::stdout(
                "you must choose a new password before anything else: run `pikoci password`\n",
            )?;
        }
        Ok(Exit::Ok)
    })();
    match result {
        Ok(exit) => exit.into(),
        Err(err) => super::report(&err),
    }
}

/// The flags of `pikoci target`.
#[derive(Debug, clap::Args)]
pub(crate) struct TargetArgs {
    /// The target to make current; without it, the saved targets are listed.
    #[arg(value_name = "NAME")]
    name: Option<String>,

    /// Forget the target named instead.
    #[arg(long, requires = "name")]
    delete: bool,
}

/// `pikoci target [NAME] [--delete]`.
pub(crate) fn target(args: TargetArgs) -> ExitCode {
    let result = (|| -> anyhow::Result<Exit> {
        let mut targets = Targets::load()?;
        match args.name {
            None => {
                if targets.targets.is_empty() {
                    output::stdout(
                        "no saved targets: save one with `pikoci login --server URL`\n",
                    )?;
                    return Ok(Exit::Ok);
                }
                let mut rows = vec![vec![
                    String::new(),
                    "NAME".to_owned(),
                    "SERVER".to_owned(),
                    "TEAM".to_owned(),
                    "TOKEN".to_owned(),
                ]];
                for (name, target) in &targets.targets {
                    let current = targets.current.as_deref() == Some(name.as_str());
                    rows.push(vec![
                        if current { "*" } else { "" }.to_owned(),
                        name.clone(),
                        target.server.clone(),
                        target.team.clone().unwrap_or_else(|| "main".to_owned()),
                        if target.token.is_some() { "yes" } else { "no" }.to_owned(),
                    ]);
                }
                output::stdout(&super::table::render(&rows))?;
            }
            Some(name) if args.delete => {
                if targets.targets.remove(&name).is_none() {
                    return Err(UsageError(format!(
                        "no target named \"{name}\"; saved targets: {}",
                        targets.names()
                    ))
                    .into());
                }
                if targets.current.as_deref() == Some(name.as_str()) {
                    targets.current = None;
                }
                targets.save()?;
                output::stdout(&format!("forgot target \"{name}\"\n"))?;
            }
            Some(name) => {
                targets.chosen(Some(&name))?;
                targets.current = Some(name.clone());
                targets.save()?;
                output::stdout(&format!("the current target is now \"{name}\"\n"))?;
            }
        }
        Ok(Exit::Ok)
    })();
    match result {
        Ok(exit) => exit.into(),
        Err(err) => super::report(&err),
    }
}
