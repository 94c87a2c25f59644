//! The application error: stable machine-readable codes, one mapping to HTTP, one JSON shape
//! (`{"error": {"code": "...", "message": "..."}}`) for every error the HTTP server returns.

use std::time::Duration;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

pub type AppResult<T> = Result<T, AppError>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{field}: {message}")]
    Validation { field: String, message: String },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after: Duration,
    },
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        AppError::Validation {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        AppError::NotFound(what.into())
    }

    /// Stable code clients can switch on.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::BadRequest(_) => "bad_request",
            AppError::Validation { .. } => "validation_failed",
            AppError::Unauthorized(_) => "unauthorized",
            AppError::Forbidden(_) => "forbidden",
            AppError::NotFound(_) => "not_found",
            AppError::MethodNotAllowed(_) => "method_not_allowed",
            AppError::Conflict(_) => "conflict",
            AppError::TooManyRequests { .. } => "too_many_requests",
            AppError::Unavailable(_) => "service_unavailable",
            AppError::Internal(_) => "internal",
        }
    }
}

/// The JSON error body.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `not_found`, `validation_failed`, `too_many_requests`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// The offending field, for `validation_failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let message = match self {
            AppError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "internal error");
                "internal server error".to_owned()
            }
            AppError::Unavailable(reason) => {
                tracing::warn!(reason = %reason, "service unavailable");
                self.to_string()
            }
            AppError::Validation { message, .. } => message.clone(),
            other => other.to_string(),
        };
        let field = match self {
            AppError::Validation { field, .. } => Some(field.clone()),
            _ => None,
        };
        let mut response = HttpResponse::build(self.status_code());
        if let AppError::TooManyRequests { retry_after, .. } = self {
            // Whole seconds, rounded up so a client that obeys never comes back too early.
            let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            response.insert_header((header::RETRY_AFTER, secs.max(1).to_string()));
        }
        if let AppError::Unauthorized(_) = self {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.json(ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message,
                field,
            },
        })
    }
}

impl From<crate::db::PoolError> for AppError {
    fn from(e: crate::db::PoolError) -> Self {
        AppError::Unavailable(format!("database unavailable: {e}"))
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            Error::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
                AppError::Unavailable(format!("database connection lost: {}", info.message()))
            }
            // PostgreSQL keeps no NUL in text (SQLSTATE 22021): the request carried one.
            Error::DatabaseError(_, ref info)
                if info.message().contains("invalid byte sequence")
                    && info.message().contains("0x00") =>
            {
                AppError::BadRequest("text must not contain the NUL character (\\u0000)".to_owned())
            }
            // Two subscribers would share one verified sign-in address.
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, ref info)
                if info.constraint_name() == Some("users_verified_email_key") =>
            {
                AppError::Conflict("another account signs in with this email address".to_owned())
            }
            other => AppError::Internal(anyhow::Error::new(other).context("database query failed")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;
    use actix_web::http::header::HeaderMap;

    async fn render(e: AppError) -> (StatusCode, HeaderMap, serde_json::Value) {
        let resp = e.error_response();
        let (status, headers) = (resp.status(), resp.headers().clone());
        let bytes = to_bytes(resp.into_body()).await.unwrap();
        (status, headers, serde_json::from_slice(&bytes).unwrap())
    }

    #[actix_rt::test]
    async fn maps_each_kind_to_status_and_body() {
        let (s, _, b) = render(AppError::validation("username", "too short")).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            b,
            serde_json::json!({"error": {"code": "validation_failed", "message": "too short", "field": "username"}})
        );
        let (s, _, b) = render(AppError::not_found("job 7")).await;
        assert_eq!(
            (s, b["error"]["message"].as_str()),
            (StatusCode::NOT_FOUND, Some("job 7 not found"))
        );
        let (s, _, b) = render(AppError::Internal(anyhow::anyhow!("secret detail"))).await;
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(b["error"]["message"], "internal server error");
        let (s, h, _) = render(AppError::TooManyRequests {
            message: "locked".into(),
            retry_after: Duration::from_millis(1500),
        })
        .await;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(h.get(header::RETRY_AFTER).unwrap(), "2");
        let (s, h, _) = render(AppError::Unauthorized("no".into())).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert_eq!(h.get(header::WWW_AUTHENTICATE).unwrap(), "Bearer");
        let (s, _, _) = render(AppError::Unavailable("db down".into())).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    }
}
