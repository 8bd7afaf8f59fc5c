//! Sealing and opening store values.

use super::*;
use pikoci_core::protocol::{BuildRef, CheckRef};
use pikoci_core::store::{BuildId, ResourceId};

fn build(id: i64, attempt: u32) -> WorkRef {
    WorkRef::Build(BuildRef {
        build_id: BuildId(id),
        attempt,
    })
}

fn values() -> StoreValues {
    let mut values = StoreValues::new();
    values.insert("TOKEN", Some(SecretValue::secret("hunter22-token")));
    values.insert("REGION", Some(SecretValue::plain("eu-west-1")));
    values.insert("MISSING", None);
    values
}

#[test]
fn values_open_with_the_workers_key_for_the_same_work() {
    let key = WorkerKey::generate();
    let sealed = seal(&key.public_text(), &values(), build(7, 2)).unwrap();
    let text = BASE64.decode(sealed.as_text()).unwrap();
    assert!(!text.windows(8).any(|w| w == b"hunter22"));
    assert!(!sealed.as_text().contains("hunter22"));
    let opened = key.open(&sealed, build(7, 2)).unwrap();
    assert_eq!(opened, values());
    assert_eq!(opened.get("TOKEN").unwrap().kind, SecretKind::Secret);
    assert_eq!(opened.get("REGION").unwrap().kind, SecretKind::Plain);
    // A fresh ephemeral key and nonce every time.
    assert_ne!(
        sealed,
        seal(&key.public_text(), &values(), build(7, 2)).unwrap()
    );
}

#[test]
fn another_key_another_work_or_an_altered_blob_does_not_open() {
    let key = WorkerKey::generate();
    let sealed = seal(&key.public_text(), &values(), build(7, 2)).unwrap();
    let error = WorkerKey::generate()
        .open(&sealed, build(7, 2))
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::PermissionDenied);
    assert!(
        error
            .to_string()
            .starts_with("cannot open the store values the server sealed to this worker"),
        "{error}"
    );
    assert!(error.to_string().ends_with("retry the build"), "{error}");
    // Bound to the build and its attempt, and builds are not checks.
    assert!(key.open(&sealed, build(7, 3)).is_err());
    assert!(key.open(&sealed, build(8, 2)).is_err());
    let check = WorkRef::Check(CheckRef {
        resource_id: ResourceId(7),
        attempt: 2,
    });
    assert!(key.open(&sealed, check).is_err());
    let mut bytes = BASE64.decode(sealed.as_text()).unwrap();
    for at in [0, 1, 40, bytes.len() - 1] {
        let mut altered = bytes.clone();
        altered[at] ^= 1;
        let altered = SealedSecrets::new(BASE64.encode(altered));
        assert!(key.open(&altered, build(7, 2)).is_err(), "byte {at}");
    }
    bytes.truncate(40);
    let short = SealedSecrets::new(BASE64.encode(bytes));
    assert!(key.open(&short, build(7, 2)).is_err());
    assert!(key.open(&SealedSecrets::new("%%"), build(7, 2)).is_err());
}

#[test]
fn a_bad_public_key_is_refused_with_what_to_do() {
    for bad in ["", "not base64!", "c2hvcnQ="] {
        let error = seal(bad, &values(), build(1, 1)).unwrap_err();
        assert!(
            error.to_string().contains("upgrade or restart the worker"),
            "{error}"
        );
    }
    // The all-zero point gives no shared secret.
    let zero = BASE64.encode([0u8; 32]);
    assert!(seal(&zero, &values(), build(1, 1)).is_err());
}

#[test]
fn debug_output_shows_names_never_values_nor_the_private_key() {
    let key = WorkerKey::generate();
    let sealed = seal(&key.public_text(), &values(), build(1, 1)).unwrap();
    for text in [
        format!("{key:?}"),
        format!("{:?}", values()),
        format!("{sealed:?}"),
    ] {
        assert!(!text.contains("hunter22"), "{text}");
        assert!(!text.contains("eu-west-1"), "{text}");
    }
    assert!(format!("{:?}", values()).contains("TOKEN"));
    assert!(format!("{key:?}").contains(&key.public_text()));
}

#[tokio::test]
async fn opened_values_answer_the_store_keys_that_were_looked_up() {
    let request = |keys: &[&str]| SecretRequest {
        secret_type: crate::STORE.to_owned(),
        definition: None,
        path: String::new(),
        keys: keys.iter().map(|k| (*k).to_owned()).collect(),
    };
    let found = values()
        .fetch(&request(&["MISSING", "TOKEN"]))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found["TOKEN"].value.expose(), "hunter22-token");
    let error = values().fetch(&request(&["OTHER"])).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("a key made of another secret's value"),
        "{error}"
    );
}
