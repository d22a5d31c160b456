//! Why a request failed: one enum for the service's boundary, with one code
//! vocabulary for both protocols. Each variant has its HTTP status and gRPC
//! code; the JSON body is `{code, message}`. A database outage is
//! UNAVAILABLE (503), never a 500 with a stack trace.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rustyray_queue::QueueError;
use serde::{Deserialize, Serialize};

/// The error codes, as gRPC names them.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Code {
    /// The request is malformed or names something that does not exist in a
    /// field (an unknown function, arguments that do not fit, a bad option).
    InvalidArgument,
    /// No such job or route.
    NotFound,
    /// The request took longer than the service allows.
    DeadlineExceeded,
    /// Too many requests at once, or a body or page that is too large.
    ResourceExhausted,
    /// No token, or one the service does not know.
    Unauthenticated,
    /// The token's role does not allow this.
    PermissionDenied,
    /// The database (or another dependency) cannot be reached now.
    Unavailable,
    /// A bug: the service could not do what it should have.
    Internal,
}

impl Code {
    /// The gRPC status code.
    pub fn grpc(self) -> tonic::Code {
        match self {
            Code::InvalidArgument => tonic::Code::InvalidArgument,
            Code::NotFound => tonic::Code::NotFound,
            Code::DeadlineExceeded => tonic::Code::DeadlineExceeded,
            Code::ResourceExhausted => tonic::Code::ResourceExhausted,
            Code::Unauthenticated => tonic::Code::Unauthenticated,
            Code::PermissionDenied => tonic::Code::PermissionDenied,
            Code::Unavailable => tonic::Code::Unavailable,
            Code::Internal => tonic::Code::Internal,
        }
    }
}

/// A failed request or a service that could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// A field of the request is wrong; the message names it.
    #[error("{0}")]
    InvalidArgument(String),
    /// The body is not of a type the route accepts.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The route exists, the method does not.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// No such job or route.
    #[error("{0}")]
    NotFound(String),
    /// The request ran past the service's deadline.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// The service is at its limit of requests in flight.
    #[error("{0}")]
    Overloaded(String),
    /// The body is larger than the service accepts.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// No valid token.
    #[error("{0}")]
    Unauthenticated(String),
    /// The token's role does not allow the operation.
    #[error("{0}")]
    PermissionDenied(String),
    /// The database or another dependency is unreachable.
    #[error("{0}")]
    Unavailable(String),
    /// Something failed that should not have.
    #[error("{0}")]
    Internal(String),
    /// The service's configuration is unusable (tokens file, address).
    #[error("configuration: {0}")]
    Config(String),
}

/// The JSON body of every error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The code, as gRPC names it.
    pub code: Code,
    /// What happened, naming the field, job or route concerned.
    pub message: String,
}

impl ServiceError {
    /// The code both protocols report.
    pub fn code(&self) -> Code {
        match self {
            ServiceError::InvalidArgument(_)
            | ServiceError::UnsupportedMediaType(_)
            | ServiceError::MethodNotAllowed(_) => Code::InvalidArgument,
            ServiceError::NotFound(_) => Code::NotFound,
            ServiceError::DeadlineExceeded(_) => Code::DeadlineExceeded,
            ServiceError::Overloaded(_) | ServiceError::PayloadTooLarge(_) => Code::ResourceExhausted,
            ServiceError::Unauthenticated(_) => Code::Unauthenticated,
            ServiceError::PermissionDenied(_) => Code::PermissionDenied,
            ServiceError::Unavailable(_) => Code::Unavailable,
            ServiceError::Internal(_) | ServiceError::Config(_) => Code::Internal,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ServiceError::InvalidArgument(_) => StatusCode::BAD_REQUEST,
            ServiceError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ServiceError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
            ServiceError::DeadlineExceeded(_) => StatusCode::GATEWAY_TIMEOUT,
            ServiceError::Overloaded(_) => StatusCode::TOO_MANY_REQUESTS,
            ServiceError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ServiceError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ServiceError::PermissionDenied(_) => StatusCode::FORBIDDEN,
            ServiceError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ServiceError::Internal(_) | ServiceError::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The error as a JSON body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody { code: self.code(), message: self.to_string() }
    }

    /// The invalid field `field`: `why`.
    pub(crate) fn field(field: &str, why: impl std::fmt::Display) -> Self {
        ServiceError::InvalidArgument(format!("{field}: {why}"))
    }
}

impl From<QueueError> for ServiceError {
    fn from(error: QueueError) -> Self {
        match &error {
            QueueError::UnknownFunction(_) => ServiceError::field("function", &error),
            QueueError::InvalidArguments { message, .. } => ServiceError::field("args", message),
            QueueError::InvalidOption { option, reason } => {
                // Durations travel in milliseconds, under the names clients send.
                let field = match *option {
                    "timeout" | "run_after" | "backoff" => format!("options.{option}_ms"),
                    _ => format!("options.{option}"),
                };
                ServiceError::field(&field, reason)
            }
            QueueError::JobNotFound(_) => ServiceError::NotFound(error.to_string()),
            QueueError::WrongState { .. } => ServiceError::InvalidArgument(error.to_string()),
            QueueError::Refused { .. } => ServiceError::Internal(error.to_string()),
            QueueError::Database { .. }
            | QueueError::Migration { .. }
            | QueueError::SchemaTooNew { .. }
            | QueueError::InvalidUrl { .. }
            | QueueError::ResultStore(_) => ServiceError::Unavailable(error.to_string()),
            _ => ServiceError::Internal(error.to_string()),
        }
    }
}

impl From<JsonRejection> for ServiceError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let text = rejection.body_text();
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => ServiceError::PayloadTooLarge(format!("body: {text}")),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                ServiceError::UnsupportedMediaType("body: send JSON with `Content-Type: application/json`".into())
            }
            _ => ServiceError::field("body", text),
        }
    }
}

impl From<QueryRejection> for ServiceError {
    fn from(rejection: QueryRejection) -> Self {
        ServiceError::field("query", rejection.body_text())
    }
}

impl From<PathRejection> for ServiceError {
    fn from(rejection: PathRejection) -> Self {
        ServiceError::field("path", rejection.body_text())
    }
}

impl From<ServiceError> for tonic::Status {
    fn from(error: ServiceError) -> Self {
        tonic::Status::new(error.code().grpc(), error.to_string())
    }
}

impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        if matches!(self, ServiceError::Internal(_)) {
            tracing::error!(error = %self, "request failed inside the service");
        }
        (self.status(), axum::Json(self.body())).into_response()
    }
}

/// The service's result type.
pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_status_on_both_protocols() {
        let cases = [
            (ServiceError::InvalidArgument("x".into()), 400, tonic::Code::InvalidArgument),
            (ServiceError::NotFound("x".into()), 404, tonic::Code::NotFound),
            (ServiceError::DeadlineExceeded("x".into()), 504, tonic::Code::DeadlineExceeded),
            (ServiceError::Overloaded("x".into()), 429, tonic::Code::ResourceExhausted),
            (ServiceError::Unauthenticated("x".into()), 401, tonic::Code::Unauthenticated),
            (ServiceError::PermissionDenied("x".into()), 403, tonic::Code::PermissionDenied),
            (ServiceError::Unavailable("x".into()), 503, tonic::Code::Unavailable),
        ];
        for (error, http, grpc) in cases {
            assert_eq!(error.status().as_u16(), http, "{error:?}");
            assert_eq!(error.code().grpc(), grpc, "{error:?}");
        }
    }

    #[test]
    fn queue_errors_name_the_field() {
        let error: ServiceError =
            QueueError::InvalidOption { option: "priority", reason: "101 is outside -100..=100".into() }.into();
        assert_eq!(error.to_string(), "options.priority: 101 is outside -100..=100");
        assert_eq!(error.code(), Code::InvalidArgument);
        let outage: ServiceError = QueueError::Database { url: "db".into(), message: "refused".into() }.into();
        assert_eq!(outage.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
