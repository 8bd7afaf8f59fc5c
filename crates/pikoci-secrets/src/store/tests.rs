//! Lookup rules, kinds and encryption of the store.

use super::*;

const KEY: &str = "0123456789abcdef0123456789abcdef";

fn store(table: Arc<MemoryTable>) -> SecretStore {
    SecretStore::new(table, Some(Cipher::new(&Secret::new(KEY)).unwrap()))
}

#[tokio::test]
async fn pipeline_entries_shadow_team_entries() {
    let store = store(Arc::new(MemoryTable::new()));
    let team = Scope::team("main");
    let pipeline = Scope::pipeline("main", "app");
    store
        .set(&team, "TOKEN", SecretKind::Secret, &Secret::new("abcdef"))
        .await
        .unwrap();
    store
        .set(
            &pipeline,
            "TOKEN",
            SecretKind::Secret,
            &Secret::new("xyz123"),
        )
        .await
        .unwrap();
    store
        .set(
            &team,
            "ONLY_TEAM",
            SecretKind::Secret,
            &Secret::new("t-value"),
        )
        .await
        .unwrap();
    let lookup = |pipeline: &'static str, name: &'static str| {
        let store = store.clone();
        async move {
            store
                .lookup("main", pipeline, name)
                .await
                .unwrap()
                .map(|v| v.value.into_exposed())
        }
    };
    assert_eq!(lookup("app", "TOKEN").await.as_deref(), Some("xyz123"));
    assert_eq!(lookup("other", "TOKEN").await.as_deref(), Some("abcdef"));
    assert_eq!(lookup("app", "ONLY_TEAM").await.as_deref(), Some("t-value"));
    assert_eq!(lookup("app", "NOPE").await, None);
    // Another team sees nothing.
    assert!(
        store
            .lookup("beta", "app", "TOKEN")
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.delete(&pipeline, "TOKEN").await.unwrap());
    assert_eq!(lookup("app", "TOKEN").await.as_deref(), Some("abcdef"));
}

#[tokio::test]
async fn secrets_are_encrypted_at_rest_and_plain_values_are_not() {
    let table = Arc::new(MemoryTable::new());
    let store = store(table.clone());
    let scope = Scope::team("main");
    store
        .set(&scope, "PW", SecretKind::Secret, &Secret::new("hunter22"))
        .await
        .unwrap();
    store
        .set(
            &scope,
            "REGION",
            SecretKind::Plain,
            &Secret::new("eu-west-1"),
        )
        .await
        .unwrap();
    let raw = format!("{:?}", table.list(&scope).await.unwrap());
    assert!(!raw.contains("hunter22"), "{raw}");
    match table.get(&scope, "PW").await.unwrap().unwrap().value {
        StoredValue::Sealed(bytes) => assert!(!bytes.windows(8).any(|w| w == b"hunter22")),
        other => panic!("stored in clear: {other:?}"),
    }
    assert_eq!(
        store.list(&scope).await.unwrap(),
        vec![
            EntryInfo {
                name: "PW".into(),
                kind: SecretKind::Secret,
                plain_value: None
            },
            EntryInfo {
                name: "REGION".into(),
                kind: SecretKind::Plain,
                plain_value: Some("eu-west-1".into())
            },
        ]
    );
    let region = store.lookup("main", "p", "REGION").await.unwrap().unwrap();
    assert_eq!(region.kind, SecretKind::Plain);
}

#[tokio::test]
async fn a_value_moved_to_another_entry_does_not_decrypt() {
    let table = Arc::new(MemoryTable::new());
    let store = store(table.clone());
    let scope = Scope::team("main");
    store
        .set(&scope, "A", SecretKind::Secret, &Secret::new("value-a"))
        .await
        .unwrap();
    let mut entry = table.get(&scope, "A").await.unwrap().unwrap();
    entry.name = "B".to_owned();
    table.put(entry).await.unwrap();
    let error = store.lookup("main", "p", "B").await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::PermissionDenied);
}

#[tokio::test]
async fn without_a_key_secrets_are_refused_and_plain_values_work() {
    let store = SecretStore::new(Arc::new(MemoryTable::new()), None);
    let scope = Scope::team("main");
    let error = store
        .set(&scope, "PW", SecretKind::Secret, &Secret::new("x"))
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("secret storage is not configured: set PIKOCI_SECRET_KEY")
    );
    store
        .set(&scope, "REGION", SecretKind::Plain, &Secret::new("eu"))
        .await
        .unwrap();
    assert!(store.lookup("main", "p", "REGION").await.unwrap().is_some());
    let error = store
        .set(&scope, "", SecretKind::Plain, &Secret::new("x"))
        .await
        .unwrap_err();
    assert!(error.to_string().starts_with("invalid secret name"));
}

#[tokio::test]
async fn the_source_answers_the_keys_that_exist() {
    let store = Arc::new(store(Arc::new(MemoryTable::new())));
    store
        .set(
            &Scope::team("main"),
            "TOKEN",
            SecretKind::Secret,
            &Secret::new("abcdef"),
        )
        .await
        .unwrap();
    let source = StoreSource::new(store, "main", "app");
    let request = SecretRequest {
        secret_type: "pikoci".to_owned(),
        definition: None,
        path: String::new(),
        keys: vec!["MISSING".to_owned(), "TOKEN".to_owned()],
    };
    let values = source.fetch(&request).await.unwrap();
    assert_eq!(values.len(), 1);
    assert_eq!(values["TOKEN"].value.expose(), "abcdef");
}

#[tokio::test]
async fn debug_output_never_shows_the_key_or_a_value() {
    let table = Arc::new(MemoryTable::new());
    let store = store(table.clone());
    store
        .set(
            &Scope::team("main"),
            "TOKEN",
            SecretKind::Secret,
            &Secret::new("stored-secret-value"),
        )
        .await
        .unwrap();
    let source = StoreSource::new(Arc::new(store.clone()), "main", "app");
    let cipher = Cipher::new(&Secret::new(KEY)).unwrap();
    let entries = table.list(&Scope::team("main")).await.unwrap();
    for text in [
        format!("{store:?}"),
        format!("{source:?}"),
        format!("{cipher:?}"),
        format!("{table:?}"),
        format!("{entries:?}"),
    ] {
        assert!(!text.contains(KEY), "{text}");
        assert!(!text.contains("stored-secret-value"), "{text}");
    }
}

#[tokio::test]
async fn an_entry_keeps_its_kind_and_setting_says_whether_it_created() {
    let store = store(Arc::new(MemoryTable::new()));
    let scope = Scope::team("main");
    let secret = |v: &str| Secret::new(v);
    assert!(
        store
            .set(&scope, "PW", SecretKind::Secret, &secret("one"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .set(&scope, "PW", SecretKind::Secret, &secret("two"))
            .await
            .unwrap()
    );
    let error = store
        .set(&scope, "PW", SecretKind::Plain, &secret("two"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Conflict);
    assert_eq!(
        error.to_string(),
        "\"PW\" is a secret entry and cannot become plain: delete it first, then set it again"
    );
    let value = store.lookup("main", "p", "PW").await.unwrap().unwrap();
    assert_eq!(value.value.expose(), "two");
    let error = store
        .set(
            &scope,
            "BIG",
            SecretKind::Plain,
            &secret(&"x".repeat(MAX_VALUE_LEN + 1)),
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput);
}
