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

pub(crate) async fn renaming_a_pipeline_reseals_its_secrets_in_one_go(
    fx: &Fixture,
) -> anyhow::Result<()> {
    use pikoci_core::store::{ResealedSecret, Store};

    let s: &dyn Store = fx.s();
    let w = world(s, "main", vec![job("a")]).await?;
    let table: &dyn SecretTable = &fx.sql;
    let old = Scope::pipeline("main", &w.pipeline.name);
    table
        .put(entry(&old, "TOKEN", StoredValue::Sealed(vec![1, 2, 3])))
        .await?;
    table
        .put(entry(&old, "REGION", StoredValue::Plain("eu".into())))
        .await?;
    let resealed = |old: Vec<u8>, new: Vec<u8>| ResealedSecret {
        name: "TOKEN".to_owned(),
        old,
        new,
    };

    // What was sealed again must be what is stored: else nothing changes.
    let stale = s
        .rename_pipeline(w.pipeline.id, "renamed", &[resealed(vec![9], vec![4])])
        .await
        .expect_err("a stale value");
    assert_eq!(stale.kind(), ErrorKind::Conflict, "{stale}");
    let missing = s
        .rename_pipeline(w.pipeline.id, "renamed", &[])
        .await
        .expect_err("an entry left out");
    assert_eq!(missing.kind(), ErrorKind::Conflict, "{missing}");
    assert_eq!(s.pipeline_by_id(w.pipeline.id).await?.name, w.pipeline.name);

    // A taken name and a name that is not canonical are refused.
    let other = super::spec("taken", "", super::model(vec![job("b")], Vec::new()));
    s.set_pipeline(w.team.id, other, super::at(3)).await?;
    let taken = s
        .rename_pipeline(w.pipeline.id, "taken", &[resealed(vec![1, 2, 3], vec![4])])
        .await
        .expect_err("a taken name");
    assert_eq!(taken.kind(), ErrorKind::Conflict, "{taken}");
    let invalid = s
        .rename_pipeline(w.pipeline.id, "Not Canonical", &[])
        .await
        .expect_err("an invalid name");
    assert_eq!(invalid.kind(), ErrorKind::InvalidInput, "{invalid}");

    let renamed = s
        .rename_pipeline(
            w.pipeline.id,
            "renamed",
            &[resealed(vec![1, 2, 3], vec![4, 5])],
        )
        .await?;
    assert_eq!(renamed.id, w.pipeline.id);
    assert_eq!(renamed.name, "renamed");
    assert_eq!(s.pipeline(w.team.id, "renamed").await?.id, w.pipeline.id);
    assert!(s.pipeline(w.team.id, &w.pipeline.name).await.is_err());
    // The jobs stay the pipeline's.
    assert_eq!(s.jobs(w.pipeline.id).await?.len(), 1);
    let new = Scope::pipeline("main", "renamed");
    assert_eq!(
        table.get(&new, "TOKEN").await?,
        Some(entry(&new, "TOKEN", StoredValue::Sealed(vec![4, 5])))
    );
    assert_eq!(
        table.get(&new, "REGION").await?,
        Some(entry(&new, "REGION", StoredValue::Plain("eu".into())))
    );
    assert_eq!(table.list(&old).await?, Vec::new());
    // The same name again changes nothing.
    assert_eq!(
        s.rename_pipeline(w.pipeline.id, "renamed", &[]).await?.name,
        "renamed"
    );
    Ok(())
}
