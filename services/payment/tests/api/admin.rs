//! The admin API: bearer token, problem details, settings unchanged on refusal.

use reqwest::StatusCode;
use serde_json::{Value, json};
use stormproof_payment::faults::FaultSettings;
use tonic::Code;

use crate::helpers::{ADMIN_TOKEN, charge, spawn_app, spawn_app_on};

#[tokio::test]
async fn without_a_configured_token_the_admin_api_does_not_exist() {
    let dir = tempfile::tempdir().expect("temp dir");
    let app = spawn_app_on(&dir.path().join("payment.db"), None).await;
    let response = app
        .http
        .get(app.ops_url("/admin/faults"))
        .bearer_auth("anything")
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test]
async fn a_missing_or_wrong_token_is_refused_with_401() {
    let app = spawn_app().await;
    let url = app.ops_url("/admin/faults");
    let requests = [
        app.http.get(&url),
        app.http.get(&url).bearer_auth("wrong-token"),
        app.http.put(&url).json(&json!({ "outage": true })),
        app.http
            .put(&url)
            .header("authorization", format!("Basic {ADMIN_TOKEN}"))
            .json(&json!({ "outage": true })),
    ];
    for request in requests {
        let response = request.send().await.expect("answered");
        testkit::admin::assert_unauthorized(response, ADMIN_TOKEN).await;
    }
    assert_eq!(
        app.faults.get(),
        FaultSettings::default(),
        "nothing changed"
    );
    app.stop().await;
}

#[tokio::test]
async fn bad_bodies_get_400_naming_the_field_and_change_nothing() {
    let app = spawn_app().await;
    let url = app.ops_url("/admin/faults");
    let before = json!({ "latency_ms": 50, "failure_rate": 0.1 });
    let response = app
        .http
        .put(&url)
        .bearer_auth(ADMIN_TOKEN)
        .json(&before)
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::OK);
    let settled = app.faults.get();

    let cases: [(&str, Option<&str>); 5] = [
        ("{\"failure_rate\": ", None),
        ("{\"failure_rate\": 1.5}", Some("failure_rate")),
        ("{\"latency_ms\": -1}", Some("latency_ms")),
        ("{\"hang_rate\": \"often\"}", Some("hang_rate")),
        ("{\"failure_rat\": 0.5}", Some("failure_rat")),
    ];
    for (body, field) in cases {
        let response = app
            .http
            .put(&url)
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("answered");
        let problem = testkit::admin::problem(response, 400, body).await;
        if let Some(field) = field {
            assert_eq!(problem["errors"][0]["field"], field, "{body}");
        }
        assert_eq!(
            app.faults.get(),
            settled,
            "a refused change leaves the settings: {body}"
        );
    }

    let shown: Value = app
        .http
        .get(&url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    assert_eq!(shown["latency_ms"], 50);
    assert_eq!(shown["failure_rate"], 0.1);
    app.stop().await;
}

#[tokio::test]
async fn put_patch_and_presets_change_calls_live() {
    let app = spawn_app().await;
    let url = app.ops_url("/admin/faults");
    let mut client = app.client().await;

    let put = |body: Value| {
        app.http
            .put(&url)
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
    };
    assert_eq!(
        put(json!({ "outage": true }))
            .await
            .expect("answered")
            .status(),
        StatusCode::OK
    );
    let status = client
        .process_payment(charge("ord-admin-1", 100))
        .await
        .expect_err("down");
    assert_eq!(status.code(), Code::Unavailable);

    let seeded: Value = put(json!({ "preset": "seed" }))
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    assert_eq!(seeded["latency_ms"], 200);
    assert_eq!(seeded["failure_rate"], 0.25);
    assert_eq!(seeded["outage"], false, "PUT replaces every knob");

    let patched: Value = app
        .http
        .patch(&url)
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "failure_rate": 0.0, "latency_ms": 0 }))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    assert_eq!(patched["failure_rate"], 0.0);
    client
        .process_payment(charge("ord-admin-1", 100))
        .await
        .expect("healed");
    app.stop().await;
}

/// The faults API takes the admin body rule (its cases: `server::admin`'s unit test):
/// another type is 415, a large body 413, both problem bodies that change nothing.
#[tokio::test]
async fn the_admin_body_rule_refuses_other_types_and_large_bodies_as_problems() {
    let app = spawn_app().await;
    let url = app.ops_url("/admin/faults");
    let outage = json!({ "outage": true });
    let form = "application/x-www-form-urlencoded";
    testkit::admin_body_rule(&app.http, &url, ADMIN_TOKEN, &outage, form, || {
        assert_eq!(
            app.faults.get(),
            FaultSettings::default(),
            "nothing changed"
        );
    })
    .await;
    assert!(app.faults.get().outage);
}
