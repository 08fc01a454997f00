//! The staff panel's pages under load: a support agent signed in through the form, as a
//! browser is, asking for the start page, the order list, an order, or the search box.

use std::collections::HashMap;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::Scenario;
use crate::server::Server;

const EMAIL: &str = "bench-support@shop.example";
const PASSWORD: &str = "a long benchmark passphrase";

/// A client signed in to the panel as a support agent made for the run (its session cookie on
/// every request), pooling `clients` connections.
pub async fn signed_in(
    binary: &str,
    server: &Server,
    clients: usize,
) -> Result<reqwest::Client, String> {
    let mut child = Command::new(binary)
        .args(["user", "create", "--database-url", &server.database_url()])
        .args(["--role", "support", "--email", EMAIL, "--name", "Bench"])
        .env("ORDERLY_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {binary} user create: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(format!("{PASSWORD}\n").as_bytes())
            .await
            .map_err(|e| e.to_string())?;
    }
    if !child.wait().await.map_err(|e| e.to_string())?.success() {
        return Err("orderly user create failed".into());
    }
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let base = &server.base;
    let form = plain
        .get(format!("{base}/admin/login"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let mut cookies = cookies_of(&form);
    let html = form.text().await.map_err(|e| e.to_string())?;
    let csrf = input(&html, "csrf").ok_or("no csrf field on the login form")?;
    let jar = |cookies: &HashMap<String, String>| {
        cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let done = plain
        .post(format!("{base}/admin/login"))
        .header(reqwest::header::COOKIE, jar(&cookies))
        .form(&[
            ("csrf", csrf.as_str()),
            ("next", "/admin"),
            ("email", EMAIL),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if done.status() != reqwest::StatusCode::SEE_OTHER {
        return Err(format!("the panel's sign-in answered {}", done.status()));
    }
    cookies.extend(cookies_of(&done));
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::COOKIE,
        jar(&cookies)
            .parse()
            .map_err(|_| "the session cookie is not a header value".to_owned())?,
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(clients)
        .build()
        .map_err(|e| e.to_string())
}

fn cookies_of(response: &reqwest::Response) -> HashMap<String, String> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|c| c.split(';').next())
        .filter_map(|pair| pair.split_once('='))
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn input(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_owned())
}

/// The page request `n` of `scenario` asks for (`ids`: orders placed beforehand).
pub fn path(scenario: Scenario, n: u64, ids: &[String]) -> String {
    let id = |n: u64| {
        ids.get((n as usize * 7919) % ids.len().max(1))
            .cloned()
            .unwrap_or_default()
    };
    match scenario {
        Scenario::PanelStart => "/admin".to_owned(),
        Scenario::PanelOrders if n.is_multiple_of(2) => "/admin/orders".to_owned(),
        Scenario::PanelOrders => "/admin/orders?status=paid".to_owned(),
        Scenario::PanelOrder => format!("/admin/orders/{}", id(n)),
        Scenario::PanelSearch if n.is_multiple_of(2) => "/admin/search?q=alice".to_owned(),
        Scenario::PanelSearch => format!("/admin/search?q={}", &id(n)[..13.min(id(n).len())]),
        _ => "/admin".to_owned(),
    }
}
