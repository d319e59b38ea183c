//! JSON and RFC 9457 problem responses, and the error every handler returns
//! so it can use `?`: a problem the caller should read, or a failure inside
//! the worker (logged by the router, answered as `internal`).

use serde::Serialize;
use snc_core::problem::{FieldError, Problem, ProblemCode};
use worker::Response;

pub enum AppError {
    /// Answered as it is.
    Problem(Box<Problem>),
    /// Storage, a binding or the runtime failed: logged, never shown.
    Worker(worker::Error),
}

/// What a handler answers.
pub type Answer = std::result::Result<Response, AppError>;

impl From<Problem> for AppError {
    fn from(p: Problem) -> Self {
        AppError::Problem(Box::new(p))
    }
}

impl From<worker::Error> for AppError {
    fn from(e: worker::Error) -> Self {
        AppError::Worker(e)
    }
}

impl From<serde_json::Error> for AppError {
    fn from(e: serde_json::Error) -> Self {
        AppError::Worker(e.into())
    }
}

/// A request whose fields did not validate.
impl From<Vec<FieldError>> for AppError {
    fn from(errors: Vec<FieldError>) -> Self {
        Problem::validation(errors).into()
    }
}

impl AppError {
    /// The problem's response; a failure inside the worker stays an error
    /// for the router to log and answer.
    pub fn answer(self) -> worker::Result<Response> {
        match self {
            AppError::Problem(p) => problem(&p),
            AppError::Worker(e) => Err(e),
        }
    }
}

pub fn json<T: Serialize>(status: u16, value: &T) -> Answer {
    Ok(Response::from_json(value)?.with_status(status))
}

pub fn problem(p: &Problem) -> worker::Result<Response> {
    let mut resp = Response::from_json(p)?.with_status(p.status);
    resp.headers_mut()
        .set("content-type", "application/problem+json")?;
    if let Some(secs) = p.retry_after {
        resp.headers_mut().set("retry-after", &secs.to_string())?;
    }
    Ok(resp)
}

/// Answers `code` with what happened: `return fail(...)` in a handler.
pub fn fail<T>(code: ProblemCode, what_happened: &str) -> std::result::Result<T, AppError> {
    Err(Problem::with_context(code, what_happened).into())
}
