//! `GET /v1/products`: the catalogue, so clients (and the load generator) can browse.

use axum::{Json, extract::State};
use serde_json::Value;

use crate::app::App;

pub(super) async fn list(State(app): State<App>) -> Json<Value> {
    Json(super::json::catalogue(app.catalogue()))
}
