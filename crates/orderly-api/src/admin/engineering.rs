//! Stage 3 in the panel: the cases staff handed to engineering, each with its frozen bundle
//! (also as a JSON download) and a form that sends the case back with a resolution note. For
//! the roles that read raw errors.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use orderly_auth::Permission;
use orderly_core::access::Engineer;
use orderly_core::ports::{Clock, SystemClock};
use orderly_core::support::MAX_NOTE;

use super::pages::{age, explain};
use super::session::{Me, Staff};
use super::{Panel, Segments, app_error, query_value, render};

/// One case engineering has.
pub(crate) struct HandedCase {
    pub(crate) order_id: String,
    pub(crate) what: String,
    pub(crate) raw_error: String,
    pub(crate) handed: String,
    pub(crate) why: String,
}

#[derive(Template)]
#[template(path = "admin/engineering.html")]
struct EngineeringPage {
    me: Me,
    cases: Vec<HandedCase>,
    done: Option<&'static str>,
    max_note: usize,
}

/// The cases engineering has, oldest hand-over first.
pub(crate) async fn list(
    State(panel): State<Panel>,
    staff: Staff,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err(e) = staff.policy().require(Permission::RawErrors) {
        return app_error(&e);
    }
    let now = SystemClock.now();
    let mut found: Vec<_> = match panel.app.support.escalations(true).await {
        Ok(found) => found.into_iter().filter(|e| e.with_engineering()).collect(),
        Err(e) => return app_error(&e),
    };
    found.sort_by_key(|e| e.engineering.as_ref().map(|h| h.at));
    let cases = found
        .iter()
        .filter_map(|e| {
            let h = e.engineering.as_ref()?;
            Some(HandedCase {
                order_id: e.order_id.to_string(),
                what: explain(&e.step, &e.error, e.attempts),
                raw_error: e.error.clone(),
                handed: format!("{} ago by {}", age(h.at, now), h.by),
                why: h.note.clone(),
            })
        })
        .collect();
    let done = (query_value(query.as_deref(), "done").as_deref() == Some("sent-back"))
        .then_some("Done: the case is back in the staff's queue with your note.");
    render(&EngineeringPage {
        me: staff.me(),
        cases,
        done,
        max_note: MAX_NOTE,
    })
}

/// The case's bundle as a JSON file.
pub(crate) async fn bundle_json(
    State(panel): State<Panel>,
    staff: Staff,
    Segments(id): Segments<String>,
) -> Response {
    let permit = match staff
        .policy()
        .order::<Engineer>(&panel.app.orders, &id)
        .await
    {
        Ok(p) => p,
        Err(e) => return app_error(&e),
    };
    let bundle = match panel.app.support.case_bundle(&permit).await {
        Ok(b) => b,
        Err(e) => return app_error(&e),
    };
    let Ok(json) = serde_json::to_string_pretty(&bundle) else {
        return app_error(&orderly_core::AppError::Internal(
            "a case bundle did not encode".into(),
        ));
    };
    let mut response = json.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"case-{}.json\"",
        permit.id()
    )) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}
