//! The whole state at once: `GET /admin/export` and `POST /admin/import`.
//!
//! An export is a SQLite database with every migration applied (the file a `--db-system sqlite`
//! server opens as it is); an import replaces a server's state by one, whatever database either
//! server runs on. Both are staged in a temporary directory (`$TMPDIR`): the export is written
//! whole before it is sent, the import received whole before it is read.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use pikoci_core::store::TransferSummary;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult};
use super::extract::ApiQuery;
use super::{Data, data};
use crate::Server;

/// The largest import read: far more than any state this server is meant for.
const MAX_IMPORT_BYTES: u64 = 64 * 1024 * 1024 * 1024;

/// The file sent, a piece at a time.
const READ_BYTES: usize = 256 * 1024;

/// What an export or an import copied: `{"tables": [{"table", "rows"}]}`, parents first.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Transfer)]
pub(crate) struct TransferView {
    /// Every table copied (all but the workers' registry), with its rows.
    tables: Vec<TableView>,
}

/// One table copied.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = TransferTable)]
pub(crate) struct TableView {
    /// The table: `teams`, `pipelines`, `builds`, `log_chunks`...
    table: String,
    /// Its rows.
    rows: u64,
}

impl From<TransferSummary> for TransferView {
    fn from(summary: TransferSummary) -> Self {
        TransferView {
            tables: summary
                .tables
                .into_iter()
                .map(|t| TableView {
                    table: t.table,
                    rows: t.rows,
                })
                .collect(),
        }
    }
}

/// A temporary directory for a transfer, as an API error when there is none.
fn staging() -> ApiResult<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("pikoci-transfer-")
        .tempdir()
        .map_err(|err| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!(
                    "no temporary directory for the transfer (set TMPDIR to a writable one): {err}"
                ),
            )
        })
}

fn file_error(what: &str, err: std::io::Error) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        format!("{what}: {err} (is the temporary directory full?)"),
    )
}

/// `GET /admin/export`: the whole state as a SQLite database (`pikoci.db`): teams, pipelines,
/// jobs, builds with their steps and logs, resources and versions, trigger events and the
/// store's secrets (sealed, as they are stored). Workers are left out: they register again.
#[utoipa::path(get, path = "/admin/export", tag = "admin", summary = "Export the whole state",
    responses((status = 200, description = "A SQLite database with every migration applied: import it with `POST /admin/import`, or open it as the database of a `--db-system sqlite` server.",
        content_type = "application/octet-stream", body = Vec<u8>,
        headers(("Content-Disposition" = String, description = "`attachment; filename=\"pikoci.db\"`")))))]
pub(crate) async fn export(State(server): State<Server>) -> ApiResult<Response> {
    let dir = staging()?;
    let path = dir.path().join("pikoci.db");
    let summary = server.store().export(&path).await?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|err| file_error("failed to read the export back", err))?;
    let length = file
        .metadata()
        .await
        .map_err(|err| file_error("failed to read the export back", err))?
        .len();
    // The open file stays readable once its directory is gone.
    drop(dir);
    tracing::info!(
        bytes = length,
        builds = summary.rows("builds"),
        "state exported"
    );
    let body = futures::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buffer = vec![0u8; READ_BYTES];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(read) => {
                buffer.truncate(read);
                Some((Ok(Bytes::from(buffer)), Some(file)))
            }
            Err(err) => Some((Err(err), None)),
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, length.to_string()),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"pikoci.db\"".to_owned(),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// `?replace=true`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImportQuery {
    /// Replace a state that holds pipelines, trigger events or team secrets (without it, such
    /// a server refuses the import).
    #[serde(default)]
    replace: bool,
}

/// `POST /admin/import`: replaces the whole state by an export, in one transaction: what
/// was here (but the workers' registry) is gone, what was exported is back with its ids,
/// build numbers, logs, versions and sealed secrets. Secrets open only with the
/// `PIKOCI_SECRET_KEY` of the server that exported them.
#[utoipa::path(post, path = "/admin/import", tag = "admin", summary = "Import an export, replacing the whole state",
    params(ImportQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The file `GET /admin/export` sent."),
    responses((status = 200, description = "What was imported, table by table.", body = Data<TransferView>)))]
pub(crate) async fn import(
    State(server): State<Server>,
    ApiQuery(query): ApiQuery<ImportQuery>,
    body: Body,
) -> ApiResult<Json<Data<TransferView>>> {
    let dir = staging()?;
    let path = dir.path().join("import.db");
    let mut file = tokio::fs::File::create(&path)
        .await
        .map_err(|err| file_error("failed to stage the import", err))?;
    let mut received = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|err| {
            ApiError::invalid(format!("the import was not received whole: {err}"))
        })?;
        received += chunk.len() as u64;
        if received > MAX_IMPORT_BYTES {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_input",
                format!("the import is larger than {MAX_IMPORT_BYTES} bytes"),
            ));
        }
        file.write_all(&chunk)
            .await
            .map_err(|err| file_error("failed to stage the import", err))?;
    }
    file.sync_all()
        .await
        .map_err(|err| file_error("failed to stage the import", err))?;
    drop(file);
    let summary = server
        .import(&path, query.replace)
        .await
        .map_err(|error| match error.kind {
            pikoci_core::ErrorKind::Conflict if !query.replace => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!(
                    "{}: import with replace=true (`pikoci import --replace`) to replace it",
                    error.message
                ),
            ),
            _ => ApiError::from(error),
        })?;
    Ok(data(TransferView::from(summary)))
}
