//! The built-in secret store's table (`SecretTable` on the SQL store).

use pikoci_core::ErrorKind;
use pikoci_core::secrets::{Scope, SecretTable, StoredEntry, StoredValue};

use super::{Fixture, job, world};

fn entry(scope: &Scope, name: &str, value: StoredValue) -> StoredEntry {
    StoredEntry {
        scope: scope.clone(),
        name: name.to_owned(),
        value,
    }
}

pub(crate) async fn secret_entries_are_scoped_replaced_and_deleted(
    fx: &Fixture,
) -> anyhow::Result<()> {
    let w = world(fx.s(), "main", vec![job("a")]).await?;
    let table: &dyn SecretTable = &fx.sql;
    let team = Scope::team("main");
    let pipeline = Scope::pipeline("main", &w.pipeline.name);
    // Ciphertext is bytes of any value, and as long as the largest value allows (64 KiB).
    let sealed: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    table
        .put(entry(&team, "TOKEN", StoredValue::Sealed(sealed.clone())))
        .await?;
    table
        .put(entry(
            &team,
            "REGION",
            StoredValue::Plain("eu-west-1 ✓".into()),
        ))
        .await?;
    table
        .put(entry(&pipeline, "TOKEN", StoredValue::Plain("p".into())))
        .await?;
    assert_eq!(
        table.get(&team, "TOKEN").await?,
        Some(entry(&team, "TOKEN", StoredValue::Sealed(sealed)))
    );
    assert_eq!(
        table.get(&pipeline, "TOKEN").await?,
        Some(entry(&pipeline, "TOKEN", StoredValue::Plain("p".into())))
    );
    assert_eq!(table.get(&pipeline, "REGION").await?, None);
    // Names are exact: no case folding.
    assert_eq!(table.get(&team, "token").await?, None);
    // Setting again replaces the value (and the kind: the store above decides whether that
    // is allowed).
    table
        .put(entry(
            &team,
            "TOKEN",
            StoredValue::Plain("now plain".into()),
        ))
        .await?;
    let names: Vec<(String, StoredValue)> = table
        .list(&team)
        .await?
        .into_iter()
        .map(|e| (e.name, e.value))
        .collect();
    assert_eq!(
        names,
        vec![
            (
                "REGION".to_owned(),
                StoredValue::Plain("eu-west-1 ✓".into())
            ),
            ("TOKEN".to_owned(), StoredValue::Plain("now plain".into())),
        ]
    );
    assert!(table.delete(&team, "REGION").await?);
    assert!(!table.delete(&team, "REGION").await?);
    assert_eq!(table.list(&team).await?.len(), 1);
    // Scopes that do not exist hold nothing, and take nothing.
    let ghost = Scope::pipeline("main", "ghost");
    assert_eq!(table.list(&ghost).await?, Vec::new());
    assert_eq!(table.get(&Scope::team("nobody"), "TOKEN").await?, None);
    assert!(!table.delete(&ghost, "TOKEN").await?);
    let error = table
        .put(entry(&ghost, "X", StoredValue::Plain("x".into())))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound);
    assert!(error.to_string().contains("pipeline \"ghost\""), "{error}");
    // A deleted pipeline takes its entries along; the team's stay.
    fx.s().delete_pipeline(w.pipeline.id).await?;
    assert_eq!(table.list(&pipeline).await?, Vec::new());
    assert_eq!(table.list(&team).await?.len(), 1);
    Ok(())
}
