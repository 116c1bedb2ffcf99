//! RFC 9457 problem documents for every error the API returns.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use eos_domain::service::ServiceError;
use serde::Serialize;

/// Base of EOS problem `type` URIs; each error kind has its own stable fragment.
pub const TYPE_BASE: &str = "https://eos.dev/problems/";

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProblemDocument {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// One entry per invalid field, with its path.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldProblem>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FieldProblem {
    pub field: String,
    pub message: String,
}

pub struct ApiError(pub StatusCode, pub ProblemDocument);

impl ApiError {
    pub fn new(status: StatusCode, kind: &str, title: &str, detail: impl Into<String>) -> Self {
        Self(
            status,
            ProblemDocument {
                problem_type: format!("{TYPE_BASE}{kind}"),
                title: title.into(),
                status: status.as_u16(),
                detail: Some(detail.into()),
                errors: Vec::new(),
            },
        )
    }

    /// A 400 of type `bad-request`: a request the CO cannot read as meant (a malformed query
    /// parameter or header, a contradiction between fields).
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad Request",
            detail,
        )
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound { .. } => Self::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "Not Found",
                e.to_string(),
            ),
            ServiceError::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", "Conflict", m),
            ServiceError::Forbidden(m) => {
                Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", m)
            }
            ServiceError::PreconditionFailed(m) => Self::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition-failed",
                "Precondition Failed",
                m,
            ),
            ServiceError::NotPlaceable(m) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "not-placeable",
                "Not Placeable",
                m,
            ),
            ServiceError::Invalid { what, problems } => {
                let mut err = Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation",
                    "Validation Failed",
                    format!("invalid {what}: {} problem(s)", problems.len()),
                );
                err.1.errors = problems
                    .iter()
                    .map(|p| FieldProblem {
                        field: p.path.clone(),
                        message: p.message.clone(),
                    })
                    .collect();
                err
            }
            ServiceError::Backend(m) => {
                tracing::error!(error = %m, "backend failure");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal Server Error",
                    "the server failed; see its log",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.1).expect("problems serialize");
        (
            self.0,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response()
    }
}

/// Turns axum's own rejections (bad JSON, wrong content type, too large) into problem documents.
pub fn rejection(status: StatusCode, detail: String) -> ApiError {
    let kind = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "too-large"
    } else {
        "bad-request"
    };
    ApiError::new(
        status,
        kind,
        status.canonical_reason().unwrap_or("Bad Request"),
        detail,
    )
}
