//! `GET …/{pc}/image.dot`: a pipeline as a Graphviz graph: resources and jobs, what feeds what.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use pikoci_core::StepKind;

use super::error::ApiResult;
use super::extract::ApiPath;
use super::pipelines::latest_build;
use super::scope::{self, PipelinePath};
use super::views::BuildPlace;
use crate::Server;

/// `GET /teams/{tc}/pipelines/{pc}/image.dot`: the pipeline as a DOT graph, left to right:
/// resources are ellipses, jobs boxes coloured by their latest build; an edge from a resource
/// to a job for each `get` (dashed when it does not trigger), from job to job for `passed`
/// (labelled with the resource), from a job to a resource for each `put`. Render it with
/// `dot -Tsvg`.
#[utoipa::path(get, path = "/teams/{tc}/pipelines/{pc}/image.dot", tag = "pipelines", summary = "A pipeline as a Graphviz graph",
    params(PipelinePath),
    responses((status = 200, description = "The graph in the DOT language.", content_type = "text/vnd.graphviz", body = String)))]
pub(crate) async fn dot(
    State(server): State<Server>,
    ApiPath(path): ApiPath<PipelinePath>,
) -> ApiResult<Response> {
    let scope = scope::pipeline(&server, &path.tc, &path.pc).await?;
    let jobs = server.store().jobs(scope.pipeline.id).await?;
    let resources = server.store().resources(scope.pipeline.id).await?;
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", quote(&scope.pipeline.name));
    out.push_str("  rankdir=LR;\n  node [fontname=\"sans-serif\", fontsize=11];\n  edge [fontname=\"sans-serif\", fontsize=9];\n");
    for resource in &resources {
        let canonical = resource.canonical();
        let _ = writeln!(
            out,
            "  {} [shape=ellipse, label={}];",
            quote(&format!("resource {canonical}")),
            quote(&canonical)
        );
    }
    for job in &jobs {
        let place = BuildPlace {
            team: &scope.team.name,
            pipeline: &scope.pipeline.name,
            job: &job.name,
            resources: &resources,
        };
        let status = latest_build(&server, job.id, place)
            .await?
            .map(|build| build.status());
        let _ = writeln!(
            out,
            "  {} [shape=box, style=\"rounded,filled\", fillcolor={}, label={}];",
            quote(&format!("job {}", job.name)),
            quote(colour(status)),
            quote(&job.name)
        );
    }
    for job in &jobs {
        let to = quote(&format!("job {}", job.name));
        for step in job.model.flat_steps() {
            let StepKind::Get(get) = &step.kind else {
                continue;
            };
            let style = if get.trigger { "solid" } else { "dashed" };
            if get.passed.is_empty() {
                let from = quote(&format!("resource {}", get.resource));
                let _ = writeln!(out, "  {from} -> {to} [style={style}];");
            } else {
                for upstream in &get.passed {
                    let from = quote(&format!("job {upstream}"));
                    let label = quote(&get.resource.to_string());
                    let _ = writeln!(out, "  {from} -> {to} [style={style}, label={label}];");
                }
            }
        }
        for resource in super::views::puts(&job.model) {
            let resource = quote(&format!("resource {resource}"));
            let _ = writeln!(out, "  {to} -> {resource};");
        }
    }
    out.push_str("}\n");
    Ok((
        [(header::CONTENT_TYPE, "text/vnd.graphviz; charset=utf-8")],
        out,
    )
        .into_response())
}

/// A DOT string literal.
fn quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                quoted.push('\\');
                quoted.push(c);
            }
            '\n' => quoted.push_str("\\n"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// The fill of a job by the status of its latest build.
fn colour(status: Option<&str>) -> &'static str {
    match status {
        Some("succeeded") => "#b7e4c7",
        Some("failed" | "errored") => "#f4a7a7",
        Some("warning") => "#ffe08a",
        Some("cancelled") => "#d9d9d9",
        Some(_) => "#a9d6f5",
        None => "#f2f2f2",
    }
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn names_are_quoted_for_dot() {
        assert_eq!(quote("job a"), "\"job a\"");
        assert_eq!(quote("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
    }
}
