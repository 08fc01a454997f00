//! The staff panel over HTTP, as a browser without JavaScript uses it: cookies, forms and
//! redirects, against the real binary.

use std::collections::HashMap;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

use crate::access::{an_order_whose_payment_gave_up, create_staff};
use crate::common::{TestServer, id_of};

/// A browser: follows no redirect by itself (the tests look at each), keeps cookies.
struct Browser<'a> {
    server: &'a TestServer,
    client: reqwest::Client,
    cookies: HashMap<String, String>,
}

/// What a page answered.
struct Page {
    status: StatusCode,
    location: Option<String>,
    set_cookies: Vec<String>,
    html: String,
}

impl Page {
    /// The value of the hidden or text input `name` in the page's first form that has one.
    fn input(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .html
            .find(&marker)
            .unwrap_or_else(|| panic!("no input {name} in {}", self.html))
            + marker.len();
        let end = self.html[start..].find('"').unwrap();
        self.html[start..start + end].to_owned()
    }
}

impl<'a> Browser<'a> {
    fn new(server: &'a TestServer) -> Self {
        Browser {
            server,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let jar: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let request = if jar.is_empty() {
            request
        } else {
            request.header(COOKIE, jar.join("; "))
        };
        let response = request.send().await.unwrap();
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .map(|v| v.to_str().unwrap().to_owned());
        let set_cookies: Vec<String> = response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        for c in &set_cookies {
            let (pair, _) = c.split_once(';').unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        let html = response.text().await.unwrap();
        Page {
            status,
            location,
            set_cookies,
            html,
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let request = self.client.get(self.server.url(path));
        self.send(request).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let request = self.client.post(self.server.url(path)).form(form);
        self.send(request).await
    }

    /// Signs in through the form.
    async fn sign_in(&mut self, email: &str, password: &str) {
        let form = self.get("/admin/login").await;
        let csrf = form.input("csrf");
        let done = self
            .post(
                "/admin/login",
                &[
                    ("csrf", &csrf),
                    ("next", "/admin"),
                    ("email", email),
                    ("password", password),
                ],
            )
            .await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    }
}

#[tokio::test]
async fn staff_sign_in_and_out_with_a_session_cookie_and_every_form_checks_its_token() {
    let server = TestServer::start(&[]).await;
    create_staff(&server, "sam@shop.example", "support", "support password").await;
    let mut browser = Browser::new(&server);

    // Not signed in: every page sends to the sign-in form, and back afterwards.
    let page = browser.get("/admin").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location.as_deref(), Some("/admin/login?next=%2Fadmin"));
    let form = browser.get("/admin/login?next=%2Fadmin").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.html.contains("<label for=\"email\">E-mail</label>"));
    let csrf = form.input("csrf");

    // A wrong password: the same answer as the API, no session.
    let wrong = browser
        .post(
            "/admin/login",
            &[
                ("csrf", &csrf),
                ("email", "sam@shop.example"),
                ("password", "nope"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(
        wrong.html.contains("wrong e-mail or password"),
        "{}",
        wrong.html
    );
    assert!(!browser.cookies.contains_key("orderly_panel"));

    // A sign-in posted from elsewhere (no token): refused, nothing signed in.
    let forged = Browser::new(&server)
        .post(
            "/admin/login",
            &[
                ("email", "sam@shop.example"),
                ("password", "support password"),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(forged.html.contains("This form has expired"));
    assert!(forged.set_cookies.is_empty());

    // The right password: a session cookie only the panel's pages get, and no script reads.
    let done = browser
        .post(
            "/admin/login",
            &[
                ("csrf", &csrf),
                ("next", "/admin"),
                ("email", "sam@shop.example"),
                ("password", "support password"),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    assert_eq!(done.location.as_deref(), Some("/admin"));
    let session = done
        .set_cookies
        .iter()
        .find(|c| c.starts_with("orderly_panel="))
        .unwrap();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/admin"] {
        assert!(session.contains(part), "{session}");
    }
    let queue = browser.get("/admin").await;
    assert_eq!(queue.status, StatusCode::OK, "{}", queue.html);
    assert!(queue.html.contains("Nothing needs attention"));
    assert!(queue.html.contains("sam@shop.example (support)"));
    assert_eq!(
        queue.set_cookies.len(),
        0,
        "a page sets no cookie once signed in"
    );

    // An open redirect is not possible through `next`.
    let mut other = Browser::new(&server);
    let form = other.get("/admin/login").await;
    let csrf = form.input("csrf");
    let away = other
        .post(
            "/admin/login",
            &[
                ("csrf", &csrf),
                ("next", "//evil.example/admin"),
                ("email", "sam@shop.example"),
                ("password", "support password"),
            ],
        )
        .await;
    assert_eq!(away.location.as_deref(), Some("/admin"));

    // Signing out needs the page's token too; then the cookie works nowhere.
    let token = queue.input("csrf");
    let cookie = browser.cookies.clone();
    let refused = browser.post("/admin/logout", &[("csrf", "forged")]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let out = browser.post("/admin/logout", &[("csrf", &token)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location.as_deref(), Some("/admin/login"));
    browser.cookies = cookie;
    let after = browser.get("/admin").await;
    assert_eq!(
        after.status,
        StatusCode::SEE_OTHER,
        "the old cookie is dead"
    );

    // Unknown pages and orders answer in HTML, not JSON.
    other.sign_in("sam@shop.example", "support password").await;
    let missing = other.get("/admin/orders/not-an-order").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(
        missing.html.contains("<h1>Not found</h1>"),
        "{}",
        missing.html
    );
    let nowhere = other.get("/admin/nowhere").await;
    assert_eq!(nowhere.status, StatusCode::NOT_FOUND);
    assert!(nowhere.html.contains("There is no such page"));
    let unreadable = other.get("/admin/customers/%00%ff").await;
    assert_eq!(unreadable.status, StatusCode::NOT_FOUND);
    assert!(
        unreadable.html.contains("There is no such page"),
        "{}",
        unreadable.html
    );
}

#[tokio::test]
async fn support_resolves_a_payment_that_ran_out_of_retries_in_three_clicks() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, order) = an_order_whose_payment_gave_up(dir.path()).await;
    server.terminate().await;
    // The provider is back.
    let server = TestServer::start_in(dir.path(), &[]).await;

    // An engineer sees the raw error but is offered no retry.
    let mut ian = Browser::new(&server);
    ian.sign_in("ian@shop.example", "engineer password").await;
    let queue = ian.get("/admin").await;
    assert!(queue.html.contains("simulated"), "{}", queue.html);
    let refused = ian
        .get(&format!("/admin/orders/{order}/confirm/retry"))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let mut sam = Browser::new(&server);
    sam.sign_in("sam@shop.example", "support password").await;
    // The queue says what happened in plain words; support does not see the raw error.
    let queue = sam.get("/admin").await;
    assert!(
        queue.html.contains("1 order needs a person"),
        "{}",
        queue.html
    );
    assert!(queue.html.contains("the payment provider did not answer"));
    assert!(!queue.html.contains("simulated"));
    // Click 1: "Retry now" shows what will happen.
    let confirm = sam
        .get(&format!("/admin/orders/{order}/confirm/retry"))
        .await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.html);
    assert!(confirm.html.contains("not taken twice"));
    // Click 2: confirm, with a reason.
    let form = [
        ("csrf", confirm.input("csrf")),
        ("version", confirm.input("version")),
        ("reason", "provider was down; back now 👍".to_owned()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let done = sam
        .post(&format!("/admin/orders/{order}/retry"), &form)
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    assert_eq!(
        done.location.as_deref(),
        Some(format!("/admin/orders/{order}?done=retried").as_str())
    );
    // The same form again (a double click) does nothing more.
    let again = sam
        .post(&format!("/admin/orders/{order}/retry"), &form)
        .await;
    assert_eq!(
        again.location.as_deref(),
        Some(format!("/admin/orders/{order}?done=changed").as_str())
    );
    let paid = server.wait_for(&order, "paid").await;
    let events = crate::common::history_events(&paid);
    assert_eq!(
        events.iter().filter(|e| *e == "RetryRequested").count(),
        1,
        "{events:?}"
    );
    assert_eq!(events.iter().filter(|e| *e == "PaymentCaptured").count(), 1);
    // The order page shows it on the timeline, with who did it and why, byte-exact.
    let page = sam
        .get(&format!("/admin/orders/{order}?done=retried"))
        .await;
    assert!(page.html.contains("Done: the step runs again now"));
    assert!(page.html.contains("RetryRequested"), "{}", page.html);
    assert!(page.html.contains("staff:sam@shop.example"));
    assert!(page.html.contains("provider was down; back now 👍"));
    assert!(
        sam.get("/admin")
            .await
            .html
            .contains("Nothing needs attention")
    );
}

#[tokio::test]
async fn notes_and_cancels_follow_the_viewers_role_and_a_double_post_does_one_thing() {
    let server = TestServer::start(&[]).await;
    create_staff(&server, "sam@shop.example", "support", "support password").await;
    create_staff(&server, "mia@shop.example", "manager", "manager password").await;
    let order = id_of(&server.place_reference().await);
    server.wait_for(&order, "paid").await;

    // Support: may note, may not cancel.
    let mut sam = Browser::new(&server);
    sam.sign_in("sam@shop.example", "support password").await;
    let page = sam.get(&format!("/admin/orders/{order}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    assert!(!page.html.contains("Cancel and refund"));
    let refused = sam
        .get(&format!("/admin/orders/{order}/confirm/cancel"))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let note = "Called <b>Zoë</b> 👩‍👩‍👧 back";
    let form = [
        ("csrf", page.input("csrf")),
        ("request", page.input("request")),
        ("text", note.to_owned()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for _ in 0..2 {
        let done = sam
            .post(&format!("/admin/orders/{order}/note"), &form)
            .await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    }
    // A stale token changes nothing.
    let stale = sam
        .post(
            &format!("/admin/orders/{order}/note"),
            &[("csrf", "old"), ("text", "should not land")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::FORBIDDEN);
    let page = sam.get(&format!("/admin/orders/{order}")).await;
    let escaped = "Called &#60;b&#62;Zoë&#60;/b&#62; 👩‍👩‍👧 back";
    assert_eq!(page.html.matches(escaped).count(), 1, "{}", page.html);
    assert!(!page.html.contains("should not land"));

    // A bearer token (a customer's, or anyone's) opens no panel page: only the cookie does.
    let (_, tokens) = server
        .post(
            "/v1/auth/register",
            &serde_json::json!({"email": "zoe@example.com", "password": "correct horse battery", "name": "Zoë"}),
        )
        .await;
    let bearer = tokens["tokens"]["accessToken"].as_str().unwrap();
    let customer = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(server.url(&format!("/admin/orders/{order}")))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(customer.status(), StatusCode::SEE_OTHER);
    assert!(
        customer.headers()[LOCATION]
            .to_str()
            .unwrap()
            .starts_with("/admin/login"),
    );

    // A manager cancels: the page says what is refunded, and a reason is required.
    let mut mia = Browser::new(&server);
    mia.sign_in("mia@shop.example", "manager password").await;
    let confirm = mia
        .get(&format!("/admin/orders/{order}/confirm/cancel"))
        .await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.html);
    assert!(
        confirm.html.contains("279.98 USD is refunded"),
        "{}",
        confirm.html
    );
    let (csrf, version) = (confirm.input("csrf"), confirm.input("version"));
    let no_reason = mia
        .post(
            &format!("/admin/orders/{order}/cancel"),
            &[("csrf", &csrf), ("version", &version)],
        )
        .await;
    assert_eq!(no_reason.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(no_reason.html.contains("Say why"));
    let done = mia
        .post(
            &format!("/admin/orders/{order}/cancel"),
            &[
                ("csrf", &csrf),
                ("version", &version),
                ("reason", "customer asked"),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    let canceled = server.wait_for(&order, "canceled").await;
    assert_eq!(canceled["reason"], "customer asked");
    let page = mia.get(&format!("/admin/orders/{order}")).await;
    assert!(page.html.contains("OrderCanceled"));
    assert!(page.html.contains("staff:mia@shop.example"));
}
