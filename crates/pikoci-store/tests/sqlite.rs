//! The conformance suite on the SQLite backends: `mem` and a file in WAL mode. These run in
//! every `cargo test`; PostgreSQL and MariaDB run in `cargo xtask it store` (`servers.rs`).
//! SQLite serialises writers, so the concurrency tests (`conformance/concurrency.rs`) cannot fail
//! here: only the server run tests them for real.

mod conformance;

use conformance::{Fixture, conformance_suite};

async fn open_mem(_test: &str) -> anyhow::Result<Fixture> {
    Fixture::open("mem", false, None).await
}

async fn open_file(_test: &str) -> anyhow::Result<Fixture> {
    let dir = tempfile::tempdir()?;
    // A directory that does not exist yet: the store creates it, and the file.
    let url = format!("sqlite://{}/data/pikoci.db", dir.path().display());
    Fixture::open(&url, true, Some(dir)).await
}

mod mem {
    use super::*;
    conformance_suite!(open_mem);
}

mod sqlite_file {
    use super::*;
    conformance_suite!(open_file);
}

#[tokio::test]
async fn sqlite_files_use_wal() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}/wal.db", dir.path().display());
    let store = pikoci_store::connect(&url).await?;
    assert_eq!(store.backend(), pikoci_store::Backend::Sqlite);
    store.close().await?;
    assert!(dir.path().join("wal.db").exists());
    // The journal mode is persistent: a plain SQLite reader sees WAL on the file.
    let header = std::fs::read(dir.path().join("wal.db"))?;
    assert_eq!(&header[..16], b"SQLite format 3\0");
    // Bytes 18 and 19 are the read and write format versions: 2 means WAL.
    assert_eq!((header[18], header[19]), (2, 2));
    Ok(())
}

#[tokio::test]
async fn bad_urls_are_invalid_input() {
    let err = pikoci_store::connect("oracle://scott:tiger@db/orcl")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), pikoci_core::ErrorKind::InvalidInput);
    assert!(!err.to_string().contains("tiger"), "{err}");
}

#[tokio::test]
async fn unusable_servers_are_unavailable() -> anyhow::Result<()> {
    // A "server" that hangs up on every connection. (A refused connection is retried until the
    // 10 s connect timeout, for servers that are still starting; this fails at once.)
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            drop(stream);
        }
    });
    for scheme in ["postgres", "mysql"] {
        let url = format!("{scheme}://nobody:secret@{addr}/pikoci");
        let err = pikoci_store::connect(&url).await.unwrap_err();
        assert_eq!(err.kind(), pikoci_core::ErrorKind::Unavailable, "{err}");
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
        for shown in [format!("{err}"), format!("{err:?}"), err.full_message()] {
            assert!(!shown.contains("secret"), "{shown}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn rows_of_an_unknown_model_format_are_refused_naming_it() -> anyhow::Result<()> {
    use pikoci_core::store::Store;
    use sea_orm::ConnectionTrait;

    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}/format.db", dir.path().display());
    let store = pikoci_store::connect(&url).await?;
    let world = conformance::world(&store, "main", vec![conformance::job("build")]).await?;
    // Written in the current format: read back as it was set.
    let read = store.pipeline_by_id(world.pipeline.id).await?;
    assert_eq!(read.model, world.pipeline.model);
    store.close().await?;

    // A later PikoCI wrote the row in a format this one does not know.
    let db = sea_orm::Database::connect(&url).await?;
    db.execute_unprepared(
        r#"UPDATE pipelines SET model = replace(model, '{"format":1,', '{"format":2,')"#,
    )
    .await?;
    db.close().await?;

    let store = pikoci_store::connect(&url).await?;
    let err = store.pipeline_by_id(world.pipeline.id).await.unwrap_err();
    assert_eq!(err.kind(), pikoci_core::ErrorKind::Internal);
    assert!(
        err.to_string()
            .starts_with("the model of pipeline \"ci\" is stored in model format 2,"),
        "{err}"
    );
    store.close().await?;
    Ok(())
}
