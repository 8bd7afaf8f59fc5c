//! Reading answers: bodies with a size cap, errors in one line.

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body is larger than the cap.
    #[error("the body is larger than {max_bytes} bytes")]
    TooLarge {
        /// The cap.
        max_bytes: u64,
    },
    /// The connection failed or timed out while reading.
    #[error("cannot read the body: {0}")]
    Read(String),
}

/// The body of `response`, refused as soon as it grows past `max_bytes` (it is read chunk by
/// chunk, never buffered whole first).
pub async fn read_capped(
    mut response: reqwest::Response,
    max_bytes: u64,
) -> Result<Vec<u8>, BodyError> {
    let too_large = BodyError::TooLarge { max_bytes };
    if response.content_length().is_some_and(|len| len > max_bytes) {
        return Err(too_large);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|err| BodyError::Read(describe(&err)))?
    {
        if (body.len() + chunk.len()) as u64 > max_bytes {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A request error in one line: what failed and its causes (such as `error sending request:
/// client error (Connect): tcp connect error: Connection refused`), without the URL, which
/// callers name themselves.
pub fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "the request timed out".to_owned();
    }
    let mut text = String::new();
    let mut cause: Option<&dyn std::error::Error> = Some(error);
    while let Some(current) = cause {
        let line = match current.downcast_ref::<reqwest::Error>() {
            Some(error) => error_without_url(error),
            None => current.to_string(),
        };
        // Some errors repeat their source in their own text.
        if !text.contains(&line) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&line);
        }
        cause = current.source();
    }
    text
}

/// A reqwest error's own text, without the URL it appends.
fn error_without_url(error: &reqwest::Error) -> String {
    let text = error.to_string();
    match error.url() {
        Some(url) => text
            .replace(&format!(" for url ({url})"), "")
            .replace(&format!(" ({url})"), ""),
        None => text,
    }
}
