//! The error body of every API response: `{"error": {"code", "message", "details"?}}` with a
//! real status code.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pikoci_config::{Diagnostic, Severity, SourceFile};
use pikoci_core::ErrorKind;
use pikoci_core::store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

use crate::ServerError;

/// An API error: the status, a stable snake_case code clients branch on, a message for people,
/// and details when there are some (the diagnostics of a pipeline that does not validate).
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Option<serde_json::Value>,
    /// Seconds for `Retry-After` (a 429); small, so that the error stays small.
    retry_after: Option<std::num::NonZeroU16>,
}

/// The result of every handler.
pub(crate) type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with this status and code.
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    /// 400 `invalid_input`: the request is wrong.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_input", message)
    }

    /// 404 `not_found`.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 429 `too_many_requests`, to try again after `seconds`.
    pub(crate) fn too_many(message: impl Into<String>, seconds: u64) -> Self {
        let seconds = u16::try_from(seconds).unwrap_or(u16::MAX).max(1);
        ApiError {
            retry_after: std::num::NonZeroU16::new(seconds),
            ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", message)
        }
    }

    /// Adds details.
    pub(crate) fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// The status (tests).
    #[cfg(test)]
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    /// A service error, with the diagnostics of a pipeline that does not validate located in
    /// `file` (the text that was validated): 422 `invalid_pipeline` with the diagnostics as
    /// details.
    pub(crate) fn from_pipeline(error: ServerError, file: &SourceFile) -> Self {
        match error.diagnostics {
            Some(diagnostics) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_pipeline",
                error.message,
            )
            .with_details(serde_json::json!(
                diagnostics
                    .iter()
                    .map(|d| DiagnosticView::new(d, Some(file)))
                    .collect::<Vec<_>>()
            )),
            None => ApiError::from(error),
        }
    }
}

/// The status and code of an error kind.
fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
        ErrorKind::Unavailable | ErrorKind::Timeout => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorKind::Unsupported => StatusCode::NOT_IMPLEMENTED,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<ServerError> for ApiError {
    fn from(error: ServerError) -> Self {
        let mut api = ApiError::new(status_of(error.kind), error.kind.as_str(), error.message);
        if let Some(diagnostics) = error.diagnostics {
            // Without the text the spans cannot be turned into lines; they stay byte ranges.
            api.status = StatusCode::UNPROCESSABLE_ENTITY;
            api.code = "invalid_pipeline";
            api.details = Some(serde_json::json!(
                diagnostics
                    .iter()
                    .map(|d| DiagnosticView::new(d, None))
                    .collect::<Vec<_>>()
            ));
        }
        api
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ApiError::from(ServerError::from(error))
    }
}

/// An error: `{"error": {"code", "message", "details"?}}`.
#[derive(Serialize, ToSchema)]
#[schema(as = Error)]
pub(crate) struct ErrorBody<'a> {
    error: ErrorContent<'a>,
}

/// What went wrong.
#[derive(Serialize, ToSchema)]
#[schema(as = ErrorContent)]
struct ErrorContent<'a> {
    /// Stable, for programs: `invalid_input`, `unauthenticated`, `forbidden`,
    /// `password_change_required`, `not_found`, `method_not_allowed`, `conflict`,
    /// `invalid_pipeline`, `too_many_requests`, `permission_denied`, `unsupported`,
    /// `unavailable`, `timeout`, `internal`.
    #[schema(example = "not_found")]
    code: &'a str,
    /// For people: what is wrong and what to do.
    message: &'a str,
    /// More, by code: the diagnostics of an `invalid_pipeline` (`[Diagnostic]`), which of the
    /// store and the broker failed for `/readyz`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Value>)]
    #[schema(nullable = false)]
    details: Option<&'a serde_json::Value>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = %self.status, code = self.code, message = %self.message, "API request failed");
        }
        let body = ErrorBody {
            error: ErrorContent {
                code: self.code,
                message: &self.message,
                details: self.details.as_ref(),
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.get().into());
        }
        response
    }
}

/// One diagnostic of a pipeline file:
/// `{"severity": "error", "message", "help"?, "file", "line"?, "column"?, "span"?: {"start", "end"}}`
/// (line and column from 1, the span in bytes; absent when the problem has no single place).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Diagnostic)]
pub(crate) struct DiagnosticView {
    severity: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    help: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    column: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    span: Option<SpanView>,
}

/// Bytes from the start of the file, `end` excluded.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Span)]
struct SpanView {
    start: usize,
    end: usize,
}

impl DiagnosticView {
    /// A diagnostic, located in `file` when it is known.
    pub(crate) fn new(diagnostic: &Diagnostic, file: Option<&SourceFile>) -> Self {
        let place = diagnostic
            .span
            .as_ref()
            .zip(file)
            .map(|(span, file)| file.line_col(span.start));
        DiagnosticView {
            severity: match diagnostic.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            },
            message: diagnostic.message.clone(),
            help: diagnostic.help.clone(),
            file: file.map(|f| f.name().to_owned()),
            line: place.map(|(line, _)| line),
            column: place.map(|(_, column)| column),
            span: diagnostic.span.as_ref().map(|span| SpanView {
                start: span.start,
                end: span.end,
            }),
        }
    }
}
