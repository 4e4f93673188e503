//! The one gRPC refusal every service answers bad input with.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

/// INVALID_ARGUMENT with a `google.rpc.BadRequest` naming each `(field, description)`, and the
/// same in the message (after `invalid <what>: `, when `what` is given) for clients that do not
/// read details.
pub fn invalid_argument<F: Into<String>>(
    what: Option<&str>,
    violations: impl IntoIterator<Item = (F, String)>,
) -> Status {
    let mut details = ErrorDetails::new();
    let mut summary = Vec::new();
    for (field, description) in violations {
        let field = field.into();
        summary.push(format!("{field}: {description}"));
        details.add_bad_request_violation(field, description);
    }
    let summary = summary.join("; ");
    let message = match what {
        Some(what) => format!("invalid {what}: {summary}"),
        None => summary,
    };
    Status::with_error_details(Code::InvalidArgument, message, details)
}
