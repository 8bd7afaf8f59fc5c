//! Resolution against an in-memory source.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::*;
use crate::ErrorKind;
use crate::{Origin, Pipeline, SecretRef, SecretType, ValueType, Variable, VariableValue};

/// One fetch the source saw.
#[derive(Debug, Clone)]
struct Fetch {
    path: String,
    keys: Vec<String>,
    config: BTreeMap<String, String>,
}

/// Secrets by (type, path), and a record of every fetch.
#[derive(Debug, Default)]
struct Memory {
    data: BTreeMap<(String, String), SecretValues>,
    failing: BTreeMap<(String, String), SecretError>,
    fetches: Mutex<Vec<Fetch>>,
}

impl Memory {
    fn with(mut self, secret_type: &str, path: &str, values: &[(&str, &str)]) -> Memory {
        self.data.insert(
            (secret_type.to_owned(), path.to_owned()),
            values
                .iter()
                .map(|(k, v)| ((*k).to_owned(), SecretValue::secret(*v)))
                .collect(),
        );
        self
    }

    fn fetches(&self) -> Vec<Fetch> {
        self.fetches.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl SecretSource for Memory {
    async fn fetch(&self, request: &SecretRequest) -> Result<SecretValues, SecretError> {
        let config = request
            .definition
            .as_ref()
            .map(|d| d.config.clone())
            .unwrap_or_default();
        self.fetches.lock().unwrap().push(Fetch {
            path: request.path.clone(),
            keys: request.keys.clone(),
            config,
        });
        let at = (request.secret_type.clone(), request.path.clone());
        if let Some(error) = self.failing.get(&at) {
            return Err(error.clone());
        }
        self.data
            .get(&at)
            .cloned()
            .ok_or_else(|| SecretError::new(ErrorKind::NotFound, "no secret at this path"))
    }
}

fn secret(name: &str, secret_type: &str, path: &str, key: &str) -> Variable {
    Variable {
        name: name.to_owned(),
        value_type: ValueType::String,
        value: VariableValue::Secret(SecretRef {
            secret_type: secret_type.to_owned(),
            path: path.to_owned(),
            key: key.to_owned(),
        }),
    }
}

fn placeholder(variable: &Variable) -> String {
    match &variable.value {
        VariableValue::Secret(secret) => secret.placeholder(),
        _ => unreachable!("only secret variables have placeholders"),
    }
}

fn secret_type(name: &str, config: &[(&str, &str)]) -> SecretType {
    SecretType {
        name: name.to_owned(),
        origin: Origin::Inline,
        params: Vec::new(),
        config: config
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        get: None,
        runner_override: None,
    }
}

fn pipeline(variables: Vec<Variable>, secret_types: Vec<SecretType>) -> Pipeline {
    Pipeline {
        variables,
        secret_types,
        ..Pipeline::default()
    }
}

async fn run(
    pipeline: &Pipeline,
    wanted: &[&str],
    memory: &Memory,
) -> Result<ResolvedSecrets, ResolveError> {
    resolve(pipeline, wanted.iter().copied(), memory).await
}

#[tokio::test]
async fn one_fetch_serves_every_key_of_a_path() {
    let user = secret("user", "vault", "secret/db", "user");
    let password = secret("password", "vault", "secret/db", "password");
    let other = secret("other", "vault", "secret/other", "x");
    let p = pipeline(vec![user.clone(), password.clone(), other.clone()], vec![]);
    let memory = Memory::default().with(
        "vault",
        "secret/db",
        &[("user", "bob"), ("password", "hunter22")],
    );
    let resolved = run(&p, &["user", "password"], &memory).await.unwrap();
    assert_eq!(
        resolved.placeholders(),
        BTreeMap::from([
            (placeholder(&user), "bob".to_owned()),
            (placeholder(&password), "hunter22".to_owned()),
        ])
    );
    // "other" is not wanted: not fetched.
    let fetches = memory.fetches();
    assert_eq!(fetches.len(), 1);
    assert_eq!(
        fetches[0].keys,
        vec!["password".to_owned(), "user".to_owned()]
    );
}

#[tokio::test]
async fn chained_secrets_resolve_layer_by_layer() {
    // env -> vault token -> db password whose path uses the env secret.
    let token = secret("token", "env", "", "VAULT_TOKEN");
    let env_name = secret("stage", "file", "/etc/stage", "name");
    let stage_placeholder = placeholder(&env_name);
    let password = secret(
        "password",
        "vault",
        &format!("secret/{stage_placeholder}/db"),
        "password",
    );
    let vault = secret_type(
        "vault",
        &[("token", &placeholder(&token)), ("address", "http://v")],
    );
    let p = pipeline(
        vec![password.clone(), token.clone(), env_name.clone()],
        vec![vault],
    );
    let memory = Memory::default()
        .with("env", "", &[("VAULT_TOKEN", "t0ken-value")])
        .with("file", "/etc/stage", &[("name", "prod")])
        .with("vault", "secret/prod/db", &[("password", "hunter22")]);
    let resolved = run(&p, &["password"], &memory).await.unwrap();
    assert_eq!(resolved.len(), 3);
    assert_eq!(
        resolved
            .get(&placeholder(&password))
            .unwrap()
            .value
            .expose(),
        "hunter22"
    );
    let fetches = memory.fetches();
    let last = fetches.last().unwrap();
    assert_eq!(last.path, "secret/prod/db");
    assert_eq!(
        last.config.get("token").map(String::as_str),
        Some("t0ken-value")
    );
    assert_eq!(fetches.len(), 3);
    // The engine can substitute the outer placeholder, which embeds the inner one, whatever
    // the map order.
    let text = format!("pw={} stage={}", placeholder(&password), stage_placeholder);
    assert_eq!(
        substitute(&text, &resolved.placeholders()),
        "pw=hunter22 stage=prod"
    );
}

#[tokio::test]
async fn a_secret_type_config_using_its_own_secret_is_a_cycle() {
    let token = secret("token", "vault", "secret/ci", "token");
    let vault = secret_type("vault", &[("token", &placeholder(&token))]);
    let p = pipeline(vec![token], vec![vault]);
    let error = run(&p, &["token"], &Memory::default()).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "circular secret dependency: token -> token"
    );
    assert_eq!(error.failures[0].error.kind(), ErrorKind::InvalidInput);
}

#[tokio::test]
async fn cycles_through_types_are_named() {
    // a uses type ta whose config uses b; b uses type tb whose config uses a.
    let a = secret("a", "ta", "p", "k");
    let b = secret("b", "tb", "p", "k");
    let ta = secret_type("ta", &[("token", &placeholder(&b))]);
    let tb = secret_type("tb", &[("token", &placeholder(&a))]);
    let p = pipeline(vec![a, b], vec![ta, tb]);
    let memory = Memory::default();
    let error = run(&p, &["a"], &memory).await.unwrap_err();
    assert_eq!(error.to_string(), "circular secret dependency: a -> b -> a");
    assert!(memory.fetches().is_empty(), "nothing is fetched");
}

/// A chain of `length` variables, each one's path using the previous one.
fn chain(length: usize) -> (Pipeline, Memory) {
    let mut variables = vec![secret("v1", "file", "start", "k")];
    let mut memory = Memory::default().with("file", "start", &[("k", "p1")]);
    for i in 2..=length {
        let previous = placeholder(&variables[i - 2]);
        variables.push(secret(&format!("v{i}"), "file", &previous, "k"));
        let value = format!("p{i}");
        memory = memory.with("file", &format!("p{}", i - 1), &[("k", value.as_str())]);
    }
    (pipeline(variables, vec![]), memory)
}

#[tokio::test]
async fn ten_levels_resolve_and_eleven_are_too_deep() {
    let (p, memory) = chain(10);
    let resolved = run(&p, &["v10"], &memory).await.unwrap();
    assert_eq!(resolved.len(), 10);
    assert_eq!(memory.fetches().len(), 10);
    let (p, memory) = chain(11);
    let error = run(&p, &["v11"], &memory).await.unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("secret dependency chain too deep (max 10 levels)"),
        "{error}"
    );
    assert!(memory.fetches().is_empty());
}

#[tokio::test]
async fn a_missing_key_names_the_variable_and_the_key() {
    let user = secret("user", "vault", "secret/db", "username");
    let p = pipeline(vec![user], vec![]);
    let memory = Memory::default().with("vault", "secret/db", &[("user", "bob")]);
    let error = run(&p, &["user"], &memory).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "secret for variable \"user\": key \"username\" not found in response"
    );
    assert_eq!(error.failures[0].error.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn fetch_failures_name_the_type_and_path_and_every_variable() {
    let a = secret("a", "vault", "secret/db", "a");
    let b = secret("b", "vault", "secret/db", "b");
    let c = secret("c", "env", "", "C");
    let p = pipeline(vec![a, b, c], vec![]);
    let mut memory = Memory::default().with("env", "", &[("C", "fine")]);
    memory.failing.insert(
        ("vault".to_owned(), "secret/db".to_owned()),
        SecretError::new(ErrorKind::PermissionDenied, "permission denied (HTTP 403)"),
    );
    let error = run(&p, &["a", "b", "c"], &memory).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "secret for variable \"a\": failed to fetch secret from \"vault\" at \"secret/db\": permission denied (HTTP 403)\n\
         secret for variable \"b\": failed to fetch secret from \"vault\" at \"secret/db\": permission denied (HTTP 403)"
    );
    assert!(
        error
            .failures
            .iter()
            .all(|f| f.error.kind() == ErrorKind::PermissionDenied)
    );
}

#[tokio::test]
async fn error_messages_never_show_resolved_values() {
    // The failing path embeds another secret's value.
    let stage = secret("stage", "env", "", "STAGE");
    let password = secret(
        "password",
        "vault",
        &format!("secret/{}", placeholder(&stage)),
        "pw",
    );
    let p = pipeline(vec![stage, password], vec![]);
    let memory = Memory::default().with("env", "", &[("STAGE", "hidden-stage")]);
    let error = run(&p, &["password"], &memory).await.unwrap_err();
    let text = error.to_string();
    assert!(!text.contains("hidden-stage"), "{text}");
    assert!(text.contains("at \"secret/***\""), "{text}");
}

#[tokio::test]
async fn variables_without_secrets_and_unknown_names_are_ignored() {
    let given = Variable {
        name: "given".to_owned(),
        value_type: ValueType::String,
        value: VariableValue::Given {
            value: serde_json::json!("x"),
        },
    };
    let p = pipeline(vec![given], vec![]);
    let resolved = run(&p, &["given", "nope"], &Memory::default())
        .await
        .unwrap();
    assert!(resolved.is_empty());
}

#[tokio::test]
async fn plain_values_are_not_masked() {
    let a = secret("a", "pikoci", "", "A");
    let b = secret("b", "pikoci", "", "B");
    let p = pipeline(vec![a, b], vec![]);
    let mut memory = Memory::default();
    memory.data.insert(
        ("pikoci".to_owned(), String::new()),
        BTreeMap::from([
            ("A".to_owned(), SecretValue::secret("secret-a")),
            ("B".to_owned(), SecretValue::plain("plain-b")),
        ]),
    );
    let resolved = run(&p, &["a", "b"], &memory).await.unwrap();
    assert_eq!(resolved.masked_values(), vec!["secret-a".to_owned()]);
    assert_eq!(resolved.placeholders().len(), 2);
}

#[test]
fn secrets_never_show_in_debug_or_display() {
    let value = Secret::new("hunter22");
    assert_eq!(format!("{value:?} {value}"), "Secret(***) ***");
    let values = SecretValue::secret("hunter22");
    assert!(!format!("{values:?}").contains("hunter22"));
    let request = SecretRequest {
        secret_type: "vault".to_owned(),
        definition: Some(secret_type("vault", &[("token", "hunter22")])),
        path: "secret/hunter22".to_owned(),
        keys: vec!["hunter22".to_owned()],
    };
    let debug = format!("{request:?}");
    assert!(!debug.contains("hunter22"), "{debug}");
    assert_eq!(request.config("token"), Some("hunter22"));
}

#[test]
fn substitution_prefers_the_longest_placeholder() {
    let inner = "__pikoci_secret:vault:b:k__".to_owned();
    let outer = format!("__pikoci_secret:vault:z/{inner}:k__");
    let values = BTreeMap::from([
        (inner.clone(), "INNER".to_owned()),
        (outer.clone(), "OUTER".to_owned()),
    ]);
    assert_eq!(
        substitute(&format!("{outer} {inner} __pikoci_secret:x"), &values),
        "OUTER INNER __pikoci_secret:x"
    );
    assert_eq!(substitute("no placeholder", &values), "no placeholder");
}

#[test]
fn resolution_can_run_on_a_multi_threaded_runtime() {
    fn assert_send<T: Send>(_: &T) {}
    let p = pipeline(vec![], vec![]);
    let memory = Memory::default();
    let future = resolve(&p, ["x"], &memory);
    assert_send(&future);
}
