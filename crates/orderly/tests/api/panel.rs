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

    /// A browser signed in through the form.
    async fn signed_in(server: &'a TestServer, email: &str, password: &str) -> Self {
        let mut browser = Browser::new(server);
        browser.sign_in(email, password).await;
        browser
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
    let mut ian = Browser::signed_in(&server, "ian@shop.example", "engineer password").await;
    let queue = ian.get("/admin").await;
    assert!(queue.html.contains("simulated"), "{}", queue.html);
    let refused = ian
        .get(&format!("/admin/orders/{order}/confirm/retry"))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let mut sam = Browser::signed_in(&server, "sam@shop.example", "support password").await;
    // The queue says what happened in plain words; support does not see the raw error.
    let queue = sam.get("/admin").await;
    assert!(
        queue.html.contains("1 order needs a person"),
        "{}",
        queue.html
    );
    assert!(queue.html.contains("the payment provider did not answer"));
    assert!(!queue.html.contains("simulated"));
    // Nor on the order's page: its timeline says the step gave up, not what the provider said.
    let page = sam.get(&format!("/admin/orders/{order}")).await;
    assert!(page.html.contains("payment gave up after"), "{}", page.html);
    assert!(!page.html.contains("simulated"), "{}", page.html);
    let page = ian.get(&format!("/admin/orders/{order}")).await;
    assert!(page.html.contains("simulated"), "{}", page.html);
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
    let mut sam = Browser::signed_in(&server, "sam@shop.example", "support password").await;
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
    let mut mia = Browser::signed_in(&server, "mia@shop.example", "manager password").await;
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

/// The fields of the address form with `address`'s values, plus the form's token and version.
fn address_form<'a>(page: &Page, address: &[(&'a str, &'a str)]) -> Vec<(&'a str, String)> {
    let mut form = vec![
        ("csrf", page.input("csrf")),
        ("version", page.input("version")),
    ];
    form.extend(address.iter().map(|(k, v)| (*k, (*v).to_owned())));
    form
}

fn pairs<'a>(form: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    form.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[tokio::test]
async fn an_undeliverable_address_is_corrected_in_two_clicks_and_leaves_the_queue() {
    let server = TestServer::start(&[]).await;
    create_staff(&server, "sam@shop.example", "support", "support password").await;
    let order = id_of(&server.place_reference().await);
    server.wait_for(&order, "paid").await;
    let (code, flagged) = server
        .post(
            &format!("/v1/orders/{order}/undeliverable"),
            &serde_json::json!({"reason": "no such street in 1200-195 Lisboa"}),
        )
        .await;
    assert_eq!(code, 200, "{flagged}");
    assert_eq!(flagged["needsAttention"]["step"], "address");
    // The same report again (a retried request) changes nothing; the order does not ship.
    let (code, again) = server
        .post(
            &format!("/v1/orders/{order}/undeliverable"),
            &serde_json::json!({"reason": "no such street in 1200-195 Lisboa"}),
        )
        .await;
    assert_eq!(code, 200, "{again}");
    assert_eq!(again["version"], flagged["version"]);
    let (code, problem) = server
        .post(
            &format!("/v1/orders/{order}/ship"),
            &serde_json::json!({"carrier": "DHL", "trackingNumber": "JD1"}),
        )
        .await;
    assert_eq!(code, 409, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("correct the address first")
    );
    // An unknown order, an empty reason: a clear 4xx (the domain refuses unpaid orders).
    let (code, problem) = server
        .post(
            "/v1/orders/00000000-0000-7000-8000-000000000000/undeliverable",
            &serde_json::json!({"reason": "x"}),
        )
        .await;
    assert_eq!(code, 404, "{problem}");
    let (code, problem) = server
        .post(
            &format!("/v1/orders/{order}/undeliverable"),
            &serde_json::json!({"reason": ""}),
        )
        .await;
    assert_eq!(code, 422, "{problem}");
    // Running a step again would not help: the API says what to do instead.
    let (code, problem) = server
        .post(&format!("/v1/orders/{order}/retry"), &serde_json::json!({}))
        .await;
    assert_eq!(code, 409, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("correct the address"),
        "{problem}"
    );

    let mut sam = Browser::signed_in(&server, "sam@shop.example", "support password").await;
    let queue = sam.get("/admin").await;
    assert!(
        queue
            .html
            .contains("The carrier cannot deliver to the shipping address: “no such street in 1200-195 Lisboa”"),
        "{}",
        queue.html
    );
    assert!(!queue.html.contains("Retry now"), "{}", queue.html);
    let link = format!("/admin/orders/{order}/address");
    assert!(queue.html.contains(&format!("href=\"{link}\"")));

    // Click 1: the form, filled with the address the order has.
    let form = sam.get(&link).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.html);
    assert!(form.html.contains("label for=\"city\""));
    // A field left empty: the form again, with what was typed and what to fix; nothing changed.
    let typed = [
        ("name", "Zoé Ñúñez 🌻"),
        ("line1", "Rua das Flores 12"),
        ("city", " "),
        ("postalCode", "1200-195"),
        ("country", "pt"),
    ];
    let sent = address_form(&form, &typed);
    let refused = sam.post(&link, &pairs(&sent)).await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.html
    );
    assert!(refused.html.contains("City or town:"), "{}", refused.html);
    assert_eq!(refused.input("name"), "Zoé Ñúñez 🌻");
    let (_, unchanged) = server.get(&format!("/v1/orders/{order}")).await;
    assert_eq!(unchanged["version"], flagged["version"]);

    // Click 2: the corrected address, saved.
    let typed = [
        ("name", "Zoé Ñúñez 🌻"),
        ("line1", "Rua das Flores 12"),
        ("line2", ""),
        ("city", "Lisboa"),
        ("postalCode", "1200-195"),
        ("country", "pt"),
        ("reason", "customer gave the right street on the phone"),
    ];
    let sent = address_form(&refused, &typed);
    let done = sam.post(&link, &pairs(&sent)).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    assert_eq!(
        done.location.as_deref(),
        Some(format!("/admin/orders/{order}?done=address").as_str())
    );
    // The same form again (a double click) changes nothing more.
    let again = sam.post(&link, &pairs(&sent)).await;
    assert_eq!(
        again.location.as_deref(),
        Some(format!("/admin/orders/{order}?done=changed").as_str())
    );

    let (_, corrected) = server.get(&format!("/v1/orders/{order}")).await;
    assert!(corrected["needsAttention"].is_null(), "{corrected}");
    let events = crate::common::history_events(&corrected);
    assert_eq!(
        events
            .iter()
            .filter(|e| *e == "OrderNeedsAttention")
            .count(),
        1,
        "reported once: {events:?}"
    );
    assert_eq!(corrected["shippingAddress"]["name"], "Zoé Ñúñez 🌻");
    assert_eq!(corrected["shippingAddress"]["country"], "PT");
    assert!(
        corrected["shippingAddress"].get("line2").is_none(),
        "{corrected}"
    );
    let events = crate::common::history_events(&corrected);
    assert_eq!(
        events
            .iter()
            .filter(|e| *e == "ShippingAddressChanged")
            .count(),
        1,
        "{events:?}"
    );
    let (_, open) = server.get("/v1/escalations").await;
    assert_eq!(open, serde_json::json!([]));
    let (_, all) = server.get("/v1/escalations?open=false").await;
    assert_eq!(all[0]["resolution"], "addressCorrected", "{all}");
    assert_eq!(all[0]["resolvedBy"], "staff:sam@shop.example");
    let page = sam
        .get(&format!("/admin/orders/{order}?done=address"))
        .await;
    assert!(
        page.html
            .contains("customer gave the right street on the phone")
    );
    assert!(page.html.contains("Zoé Ñúñez 🌻"));
    let queue = sam.get("/admin").await;
    assert!(
        queue.html.contains("Nothing needs attention"),
        "{}",
        queue.html
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canceling_a_stuck_order_from_the_panel_settles_its_case() {
    let dir = tempfile::tempdir().unwrap();
    let (server, order) = an_order_whose_payment_gave_up(dir.path()).await;
    create_staff(&server, "mia@shop.example", "manager", "manager password").await;
    let mut mia = Browser::signed_in(&server, "mia@shop.example", "manager password").await;
    let confirm = mia
        .get(&format!("/admin/orders/{order}/confirm/cancel"))
        .await;
    assert!(
        confirm.html.contains("No payment was taken"),
        "{}",
        confirm.html
    );
    let form = [
        ("csrf", confirm.input("csrf")),
        ("version", confirm.input("version")),
        ("reason", "the customer bought elsewhere".to_owned()),
    ];
    let done = mia
        .post(&format!("/admin/orders/{order}/cancel"), &pairs(&form))
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    let canceled = server.wait_for(&order, "canceled").await;
    assert!(canceled["needsAttention"].is_null(), "{canceled}");
    let (_, open) = server.get("/v1/escalations").await;
    assert_eq!(open, serde_json::json!([]), "the case left the queue");
    let (_, all) = server.get("/v1/escalations?open=false").await;
    assert_eq!(all[0]["resolution"], "canceled", "{all}");
    assert_eq!(all[0]["resolvedBy"], "staff:mia@shop.example");
    let queue = mia.get("/admin").await;
    assert!(
        queue.html.contains("Nothing needs attention"),
        "{}",
        queue.html
    );
    // The same form once more: the order moved on, nothing is done twice.
    let again = mia
        .post(&format!("/admin/orders/{order}/cancel"), &pairs(&form))
        .await;
    assert_eq!(
        again.location.as_deref(),
        Some(format!("/admin/orders/{order}?done=changed").as_str())
    );
}

#[tokio::test]
async fn support_sends_again_the_messages_a_down_mail_server_did_not_take() {
    let mut smtp = orderly_testkit::smtp::SmtpServer::start().await;
    smtp.stop().await;
    let (server, _dir) = crate::notify::start(&smtp, None).await;
    create_staff(&server, "sam@shop.example", "support", "support password").await;
    create_staff(&server, "ian@shop.example", "engineer", "engineer password").await;
    let order = id_of(&server.place_reference().await);
    server.wait_for(&order, "paid").await;
    server.wait_idle().await;

    let mut sam = Browser::signed_in(&server, "sam@shop.example", "support password").await;
    let list = sam.get("/admin/notifications").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.html);
    assert_eq!(
        list.html
            .matches("The mail server did not take the message")
            .count(),
        2,
        "{}",
        list.html
    );
    assert!(
        !list.html.contains("SMTP"),
        "support sees no raw error: {}",
        list.html
    );
    assert!(
        list.html
            .contains(&format!("href=\"/admin/orders/{order}\""))
    );
    let send = |page: &Page| vec![("csrf", page.input("csrf")), ("key", page.input("key"))];
    let form = send(&list);

    // Still down: it stays on the list and the page says so.
    let refused = sam.post("/admin/notifications/retry", &pairs(&form)).await;
    assert_eq!(
        refused.location.as_deref(),
        Some("/admin/notifications?done=refused")
    );
    smtp.restart().await;
    let sent = sam.post("/admin/notifications/retry", &pairs(&form)).await;
    assert_eq!(
        sent.location.as_deref(),
        Some("/admin/notifications?done=sent")
    );
    assert_eq!(smtp.wait_for(1).await.len(), 1);
    let twice = sam.post("/admin/notifications/retry", &pairs(&form)).await;
    assert_eq!(
        twice.location.as_deref(),
        Some("/admin/notifications?done=already")
    );
    let list = sam.get("/admin/notifications?done=sent").await;
    assert!(list.html.contains("Done: the message went out."));
    assert_eq!(
        list.html
            .matches("The mail server did not take the message")
            .count(),
        1
    );

    // An engineer reads the raw error but sends nothing; a stale token changes nothing.
    let mut ian = Browser::signed_in(&server, "ian@shop.example", "engineer password").await;
    let seen = ian.get("/admin/notifications").await;
    assert!(seen.html.contains("SMTP"), "{}", seen.html);
    assert!(!seen.html.contains("Send again"));
    let mut form = send(&list);
    form[0].1 = seen.input("csrf");
    let refused = ian.post("/admin/notifications/retry", &pairs(&form)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let stale = sam
        .post(
            "/admin/notifications/retry",
            &[("csrf", "old"), ("key", &form[1].1)],
        )
        .await;
    assert_eq!(stale.status, StatusCode::FORBIDDEN);
    assert_eq!(smtp.messages().len(), 1, "nothing more went out");
}

#[tokio::test]
async fn demo_failures_seed_one_case_per_class_and_each_resolves() {
    // The demo's own stage-1 wait for its declined card (the tests' fast retries have none).
    let server = TestServer::start(&["--demo-failures", "--retry-payment-declined", "10m"]).await;
    let mut queue = serde_json::json!([]);
    for _ in 0..150 {
        queue = server.get("/v1/escalations").await.1;
        if queue.as_array().is_some_and(|q| q.len() == 2) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let case = |step: &str| -> String {
        queue
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["step"] == step)
            .map(|c| c["orderId"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("no {step} case in {queue}"))
    };
    let (payment, address) = (case("payment"), case("address"));
    // The start page counts them: three orders this week, one rejected (the declined card).
    create_staff(&server, "sam@shop.example", "support", "support password").await;
    let mut sam = Browser::signed_in(&server, "sam@shop.example", "support password").await;
    let start = sam.get("/admin").await;
    assert!(
        start
            .html
            .contains("<th scope=\"row\">Last 7 days</th><td>3</td>"),
        "{}",
        start.html
    );
    assert!(
        start.html.contains("2 orders need a person"),
        "{}",
        start.html
    );
    // The declined card is stage 1 at work: tried again in ten minutes, its stock held.
    let mut start = start;
    for _ in 0..100 {
        if start.html.contains("Trying again on their own") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        start = sam.get("/admin").await;
    }
    assert!(
        start.html.contains("Trying again on their own"),
        "{}",
        start.html
    );
    assert!(
        start
            .html
            .contains("card was declined (1 try so far, payment step)")
    );
    assert!(
        start.html.contains("automatic retry in 9:")
            || start.html.contains("automatic retry in 10:00")
    );
    let (_, waiting) = server.get("/v1/orders?status=reserved").await;
    let declined: Vec<&serde_json::Value> = waiting["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["needsAttention"].is_null())
        .collect();
    assert_eq!(declined.len(), 1, "{waiting}");
    let declined = declined[0]["id"].as_str().unwrap().to_owned();
    // Retry now: declined again, and that was its last try, so it is rejected at once.
    let (code, _) = server
        .post(
            &format!("/v1/orders/{declined}/retry"),
            &serde_json::json!({"reason": "the customer says the card is fine now"}),
        )
        .await;
    assert_eq!(code, 202);
    let rejected = server.wait_for(&declined, "rejected").await;
    assert!(
        rejected["reason"]
            .as_str()
            .unwrap()
            .starts_with("payment declined"),
        "{rejected}"
    );
    assert_eq!(
        crate::common::history_events(&rejected),
        [
            "OrderPlaced",
            "InventoryReserved",
            "PaymentDeclined",
            "PaymentFailed"
        ]
    );

    // The outage ends just after the automatic retries: one retry from staff pays.
    let (code, _) = server
        .post(
            &format!("/v1/orders/{payment}/retry"),
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(code, 202);
    let paid = server.wait_for(&payment, "paid").await;
    assert!(paid["needsAttention"].is_null(), "{paid}");
    let (code, corrected) = server
        .client
        .put(server.url(&format!("/v1/orders/{address}/shipping-address")))
        .json(&serde_json::json!({
            "name": "山田 太郎", "line1": "渋谷区神南 1-2-3 🏠", "city": "東京都",
            "postalCode": "150-0041", "country": "JP"
        }))
        .send()
        .await
        .map(|r| (r.status(), r))
        .unwrap();
    assert_eq!(code, StatusCode::OK, "{:?}", corrected.text().await);
    let (_, open) = server.get("/v1/escalations").await;
    assert_eq!(open, serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn support_hands_a_case_to_engineering_which_sends_it_back_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let (server, order) = an_order_whose_payment_gave_up(dir.path()).await;
    let mut sam = Browser::signed_in(&server, "sam@shop.example", "support password").await;
    let queue = sam.get("/admin").await;
    let confirm_link = format!("/admin/orders/{order}/confirm/handover");
    assert!(queue.html.contains(&confirm_link), "{}", queue.html);
    assert!(
        !queue.html.contains("With engineering</a>"),
        "support has no engineering menu"
    );

    // Click 1: what happens, and a reason is required.
    let confirm = sam.get(&confirm_link).await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.html);
    assert!(confirm.html.contains("frozen copy"));
    let post = format!("/admin/orders/{order}/handover");
    let (csrf, version) = (confirm.input("csrf"), confirm.input("version"));
    let no_reason = sam
        .post(&post, &[("csrf", &csrf), ("version", &version)])
        .await;
    assert_eq!(no_reason.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Click 2: handed over; the same form again does nothing more.
    let form = [
        ("csrf", csrf.as_str()),
        ("version", version.as_str()),
        ("reason", "retried twice at 10:00, still “provider down” 🤷"),
    ];
    for _ in 0..2 {
        let done = sam.post(&post, &form).await;
        assert_eq!(
            done.location.as_deref(),
            Some(format!("/admin/orders/{order}?done=handed").as_str()),
            "{}",
            done.html
        );
    }
    let queue = sam.get("/admin").await;
    assert!(
        queue.html.contains("With engineering for"),
        "{}",
        queue.html
    );
    assert!(
        !queue
            .html
            .contains(&format!("/admin/orders/{order}/confirm/retry"))
    );
    let refused = sam.get(&format!("/admin/orders/{order}/bundle.json")).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let refused = sam
        .post(
            &format!("/admin/orders/{order}/sendback"),
            &[("csrf", csrf.as_str()), ("note", "not mine to send")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    // While engineering has it, nobody retries it: not from the order page, not over REST.
    let page = sam.get(&format!("/admin/orders/{order}")).await;
    assert!(
        page.html.contains("Engineering has this case"),
        "{}",
        page.html
    );
    assert!(
        !page
            .html
            .contains(&format!("/admin/orders/{order}/confirm/retry"))
    );
    let (code, problem) = server
        .post(&format!("/v1/orders/{order}/retry"), &serde_json::json!({}))
        .await;
    assert_eq!(code, 409, "{problem}");

    // The engineer finds it, with the raw error, and downloads the frozen bundle.
    let mut ian = Browser::signed_in(&server, "ian@shop.example", "engineer password").await;
    let cases = ian.get("/admin/engineering").await;
    assert_eq!(cases.status, StatusCode::OK, "{}", cases.html);
    assert!(
        cases.html.contains("still “provider down” 🤷"),
        "{}",
        cases.html
    );
    assert!(cases.html.contains("simulated"), "{}", cases.html);
    let bundle = ian.get(&format!("/admin/orders/{order}/bundle.json")).await;
    assert_eq!(bundle.status, StatusCode::OK);
    let json: serde_json::Value = serde_json::from_str(&bundle.html).unwrap();
    assert_eq!(json["orderId"], order.as_str());
    assert_eq!(json["handedOver"]["by"], "staff:sam@shop.example");
    assert!(
        json["attention"]["error"]
            .as_str()
            .unwrap()
            .contains("simulated"),
        "{json}"
    );
    assert!(json["trace"].as_array().unwrap().len() >= 3, "{json}");
    assert!(!json["events"].as_array().unwrap().is_empty(), "{json}");
    assert_eq!(json["inputs"]["customerId"], "001");
    assert_eq!(json["inputs"]["total"], "279.98 USD");

    // Sent back with a note: the case is support's again, with what engineering said.
    let note = "the provider had an outage; it is over, retry it";
    let back = ian
        .post(
            &format!("/admin/orders/{order}/sendback"),
            &[("csrf", &cases.input("csrf")), ("note", note)],
        )
        .await;
    assert_eq!(
        back.location.as_deref(),
        Some("/admin/engineering?done=sent-back"),
        "{}",
        back.html
    );
    let again = ian
        .post(
            &format!("/admin/orders/{order}/sendback"),
            &[("csrf", &cases.input("csrf")), ("note", note)],
        )
        .await;
    assert_eq!(
        again.status,
        StatusCode::CONFLICT,
        "it is not engineering's any more"
    );
    let queue = sam.get("/admin").await;
    assert!(
        queue
            .html
            .contains(&format!("Engineering sent it back: “{note}”")),
        "{}",
        queue.html
    );
    assert!(
        queue
            .html
            .contains(&format!("/admin/orders/{order}/confirm/retry"))
    );
    let page = sam.get(&format!("/admin/orders/{order}")).await;
    assert_eq!(
        page.html.matches("handed to engineering:").count(),
        1,
        "{}",
        page.html
    );
    assert!(page.html.contains("engineering sent the case back:"));
}

#[tokio::test]
async fn stage_one_shows_the_next_automatic_try_and_retry_now_runs_it_at_once() {
    // The provider is down; after the first try the payment waits six hours for its next.
    let server = TestServer::start(&[
        "--payment-transient-rate",
        "1",
        "--retry-max-attempts",
        "0",
        "--retry-payment-unavailable",
        "6h",
    ])
    .await;
    create_staff(&server, "sam@shop.example", "support", "support password").await;
    let order = id_of(&server.place_reference().await);
    let mut sam = Browser::signed_in(&server, "sam@shop.example", "support password").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let page = loop {
        let page = sam.get(&format!("/admin/orders/{order}")).await;
        if page.html.contains("automatic retry in") {
            break page;
        }
        assert!(std::time::Instant::now() < deadline, "{}", page.html);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    // In plain words, with the time left and the way to skip it; no raw error for support.
    assert!(
        page.html
            .contains("The payment provider did not answer (1 try so far, payment step)"),
        "{}",
        page.html
    );
    assert!(
        page.html.contains("automatic retry in 5:59:"),
        "{}",
        page.html
    );
    assert!(page.html.contains("retry now"));
    assert!(!page.html.contains("simulated"), "{}", page.html);
    // The start page lists it as stage 1 at work, not as a case.
    let queue = sam.get("/admin").await;
    assert!(
        queue.html.contains("Trying again on their own"),
        "{}",
        queue.html
    );
    assert!(queue.html.contains(&order));
    assert!(queue.html.contains("Nothing needs attention"));

    // Retry now: the confirmation says what happens instead of the wait.
    let confirm = sam
        .get(&format!("/admin/orders/{order}/confirm/retry"))
        .await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.html);
    assert!(
        confirm
            .html
            .contains("runs now instead of waiting for its automatic retry in"),
        "{}",
        confirm.html
    );
    let form = [
        ("csrf", confirm.input("csrf")),
        ("version", confirm.input("version")),
        (
            "reason",
            "customer on the phone; provider says it is back".to_owned(),
        ),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let done = sam
        .post(&format!("/admin/orders/{order}/retry"), &form)
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    // The try ran at once (not in six hours): still down, so the order now needs a person.
    let flagged = server
        .wait_until(
            &order,
            |o| o["needsAttention"].is_object(),
            "needs attention",
        )
        .await;
    assert_eq!(flagged["needsAttention"]["attempts"], 2);
    let page = sam.get(&format!("/admin/orders/{order}")).await;
    assert!(
        page.html
            .contains("Retry now: the payment step runs at once"),
        "{}",
        page.html
    );
    assert!(
        page.html
            .contains("customer on the phone; provider says it is back")
    );
    assert!(page.html.contains("staff:sam@shop.example"));
    assert!(!page.html.contains("automatic retry in"), "{}", page.html);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn support_refunds_part_of_a_payment_after_seeing_exactly_what_goes_back() {
    let server = TestServer::start(&["--refund-limit", "50.00 USD"]).await;
    create_staff(&server, "sam@shop.example", "support", "support password").await;
    let order = id_of(&server.place_reference().await);
    server.wait_for(&order, "paid").await;
    let mut sam = Browser::signed_in(&server, "sam@shop.example", "support password").await;
    // The order page offers a refund, and no cancel: the order is paid.
    let page = sam.get(&format!("/admin/orders/{order}")).await;
    assert!(page.html.contains("Refund part"), "{}", page.html);
    assert!(!page.html.contains("Cancel and refund"), "{}", page.html);
    let refused = sam
        .get(&format!("/admin/orders/{order}/confirm/cancel"))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.html);
    assert!(refused.html.contains("A manager cancels a paid order"));

    // Click 1: how much and why, with what is left and the role's limit.
    let form = sam
        .get(&format!("/admin/orders/{order}/confirm/refund"))
        .await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.html);
    assert!(
        form.html
            .contains("279.98 USD was captured; 279.98 USD is left to refund.")
    );
    assert!(
        form.html
            .contains("Your role refunds up to 50.00 USD of one order in all.")
    );
    assert!(form.html.contains("Amount to refund, in USD"));
    let (csrf, version) = (form.input("csrf"), form.input("version"));
    let post = |amount: &str, confirmed: bool| {
        let mut f = vec![
            ("csrf", csrf.clone()),
            ("version", version.clone()),
            ("amount", amount.to_owned()),
            ("reason", "the mug arrived broken 🫖".to_owned()),
        ];
        if confirmed {
            f.push(("confirmed", "yes".to_owned()));
        }
        f
    };
    // Not an amount: said plainly, and what was typed is kept.
    let f = post("12,5O", false);
    let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let bad = sam.post(&format!("/admin/orders/{order}/refund"), &f).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.html);
    assert!(bad.html.contains("Write it like 12.50"), "{}", bad.html);
    assert!(bad.html.contains("value=\"12,5O\""), "{}", bad.html);
    // Click 2: review — exactly what goes back, nothing done yet.
    let f = post("42.10", false);
    let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let review = sam.post(&format!("/admin/orders/{order}/refund"), &f).await;
    assert_eq!(review.status, StatusCode::OK, "{}", review.html);
    assert!(
        review
            .html
            .contains("42.10 USD goes back to the payment method the order was paid with."),
        "{}",
        review.html
    );
    assert!(review.html.contains("Refund 42.10 USD"));
    assert!(review.html.contains("the mug arrived broken 🫖"));
    let (_, unchanged) = server.get(&format!("/v1/orders/{order}")).await;
    assert!(
        unchanged["payment"]["refundPending"].is_null(),
        "the review refunds nothing"
    );
    // Click 3: confirm. A double click does one thing.
    let f = post("42.10", true);
    let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let done = sam.post(&format!("/admin/orders/{order}/refund"), &f).await;
    assert_eq!(
        done.location.as_deref(),
        Some(format!("/admin/orders/{order}?done=refunded").as_str()),
        "{}",
        done.html
    );
    let again = sam.post(&format!("/admin/orders/{order}/refund"), &f).await;
    assert_eq!(
        again.location.as_deref(),
        Some(format!("/admin/orders/{order}?done=changed").as_str())
    );
    let refunded = server
        .wait_until(
            &order,
            |o| {
                o["payment"]["refunds"]
                    .as_array()
                    .is_some_and(|r| r.len() == 1)
            },
            "refunded",
        )
        .await;
    assert_eq!(
        refunded["payment"]["refunds"][0]["amount"]["amount"],
        "42.10"
    );
    let page = sam
        .get(&format!("/admin/orders/{order}?done=refunded"))
        .await;
    assert!(page.html.contains("RefundRequested"), "{}", page.html);
    assert!(page.html.contains("staff:sam@shop.example"));
    assert!(
        page.html
            .contains("refund of 42.10 USD asked for: the mug arrived broken 🫖")
    );

    // Over the limit (42.10 + 8.00 > 50.00): refused with the reason, nothing done.
    let form = sam
        .get(&format!("/admin/orders/{order}/confirm/refund"))
        .await;
    let f = [
        ("csrf", form.input("csrf")),
        ("version", form.input("version")),
        ("amount", "8.00".to_owned()),
        ("reason", "and the box".to_owned()),
        ("confirmed", "yes".to_owned()),
    ];
    let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let over = sam.post(&format!("/admin/orders/{order}/refund"), &f).await;
    assert_eq!(
        over.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        over.html
    );
    assert!(
        over.html
            .contains("your role refunds up to 50.00 USD of one order in all"),
        "{}",
        over.html
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_search_box_finds_orders_by_their_id_and_customers_by_name_email_or_phone() {
    let server = TestServer::start(&[]).await;
    create_staff(&server, "sam@shop.example", "support", "support password").await;
    for (id, email, name) in [
        ("c-zoe", "Zoe.Martin@example.fr", "Zoé Martin-Dubois"),
        ("c-taro", "taro@example.jp", "山田 太郎"),
        ("c-zora", "zora@example.com", "Zora Ng"),
    ] {
        let (code, body) = server
            .post(
                "/v1/customers",
                &serde_json::json!({"id": id, "email": email, "name": name}),
            )
            .await;
        assert_eq!(code, 201, "{body}");
    }
    let (code, _) = server
        .client
        .put(server.url("/v1/customers/c-zoe/notification-preferences"))
        .json(&serde_json::json!({"marketing": false, "smsPhone": "+33612345678"}))
        .send()
        .await
        .map(|r| (r.status(), ()))
        .unwrap();
    assert_eq!(code, StatusCode::OK);
    let mut body = crate::common::reference_body();
    body["customerId"] = serde_json::json!("c-zoe");
    let order = id_of(&server.place(&body).await);

    let mut sam = Browser::signed_in(&server, "sam@shop.example", "support password").await;
    let search = |q: &str| format!("/admin/search?q={}", urlencode(q));
    // Accents and case aside, any word of the name, the e-mail, the phone as typed.
    for typed in [
        "zoe",
        "ZOÉ",
        "zoë martin",
        "dubois",
        "zoe.martin@",
        "+33 6 12 34 56 78",
        "06 12 34 56 78",
    ] {
        let page = sam.get(&search(typed)).await;
        assert_eq!(page.status, StatusCode::OK, "{typed}: {}", page.html);
        assert!(
            page.html.contains("Zoé Martin-Dubois"),
            "{typed}: {}",
            page.html
        );
        assert!(!page.html.contains("山田"), "{typed}");
    }
    // Two customers start with "zo": both, and nobody else.
    let page = sam.get(&search("zo")).await;
    assert!(page.html.contains("Zoé Martin-Dubois") && page.html.contains("Zora Ng"));
    assert!(
        page.html.contains("0 orders and 2 customers match"),
        "{}",
        page.html
    );
    // Any script.
    let page = sam.get(&search("山田")).await;
    assert!(page.html.contains("山田 太郎"), "{}", page.html);
    let page = sam.get(&search("太郎")).await;
    assert!(page.html.contains("山田 太郎"), "{}", page.html);
    // An order by the start of its id (as in the customer's e-mail, in any case); the whole
    // id opens it; a customer's id opens them.
    let page = sam.get(&search(&order[..13].to_uppercase())).await;
    assert!(
        page.html.contains(&format!("/admin/orders/{order}")),
        "{}",
        page.html
    );
    let opened = sam.get(&search(&order)).await;
    assert_eq!(
        opened.location.as_deref(),
        Some(format!("/admin/orders/{order}").as_str())
    );
    let opened = sam.get(&search("c-taro")).await;
    assert_eq!(opened.location.as_deref(), Some("/admin/customers/c-taro"));
    // The customer's page lists their orders: one click from the search to everything.
    let page = sam.get("/admin/customers/c-zoe").await;
    assert!(page.html.contains(&order), "{}", page.html);
    assert!(page.html.contains("+33612345678"), "{}", page.html);
    // A customer made again under a taken id is refused, and their name finds nobody.
    let (code, _) = server
        .post(
            "/v1/customers",
            &serde_json::json!({"id": "c-zoe", "email": "mallory@example.com", "name": "Mallory Evil"}),
        )
        .await;
    assert_eq!(code, 409);
    let page = sam.get(&search("mallory")).await;
    assert!(!page.html.contains("Zoé"), "{}", page.html);
    assert!(page.html.contains("Nothing matches"), "{}", page.html);
    // Nothing found says what to try.
    let page = sam.get(&search("nobody-like-this")).await;
    assert!(page.html.contains("Nothing matches"), "{}", page.html);
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn support_sends_the_customer_a_written_message_from_the_order_page() {
    let server = TestServer::start(&[]).await;
    create_staff(&server, "sam@shop.example", "support", "support password").await;
    let order = id_of(&server.place_reference().await);
    server.wait_for(&order, "paid").await;
    let mut sam = Browser::signed_in(&server, "sam@shop.example", "support password").await;
    let page = sam.get(&format!("/admin/orders/{order}")).await;
    assert!(
        page.html.contains("Send the customer a message"),
        "{}",
        page.html
    );
    let confirm = sam
        .get(&format!("/admin/orders/{order}/confirm/message"))
        .await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.html);
    assert!(confirm.html.contains("<legend>Which message</legend>"));
    assert!(confirm.html.contains("value=\"contact_delay\""));
    let (csrf, version) = (confirm.input("csrf"), confirm.input("version"));
    // No choice: said plainly.
    let none = sam
        .post(
            &format!("/admin/orders/{order}/message"),
            &[("csrf", csrf.as_str()), ("version", version.as_str())],
        )
        .await;
    assert_eq!(
        none.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        none.html
    );
    assert!(none.html.contains("Choose the message to send."));
    let form = [
        ("csrf", csrf.as_str()),
        ("version", version.as_str()),
        ("message", "contact_delay"),
        ("reason", "warehouse backlog this week"),
    ];
    let done = sam
        .post(&format!("/admin/orders/{order}/message"), &form)
        .await;
    assert_eq!(
        done.location.as_deref(),
        Some(format!("/admin/orders/{order}?done=messaged").as_str()),
        "{}",
        done.html
    );
    // A double click sends nothing more.
    let again = sam
        .post(&format!("/admin/orders/{order}/message"), &form)
        .await;
    assert_eq!(
        again.location.as_deref(),
        Some(format!("/admin/orders/{order}?done=changed").as_str())
    );
    let page = sam
        .get(&format!("/admin/orders/{order}?done=messaged"))
        .await;
    assert!(page.html.contains("CustomerContacted"), "{}", page.html);
    assert!(
        page.html
            .contains("contact_delay: warehouse backlog this week")
    );
    let (_, o) = server.get(&format!("/v1/orders/{order}")).await;
    let contacted = o["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["event"] == "CustomerContacted")
        .count();
    assert_eq!(contacted, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_list_pages_newest_first_and_filters_by_status() {
    let server = TestServer::start(&[]).await;
    create_staff(&server, "sam@shop.example", "support", "support password").await;
    let mut placed = Vec::new();
    for _ in 0..3 {
        placed.push(id_of(&server.place_reference().await));
    }
    for id in &placed {
        server.wait_for(id, "paid").await;
    }
    let (code, _) = server
        .post(
            &format!("/v1/orders/{}/cancel", placed[1]),
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(code, 200);
    let mut sam = Browser::signed_in(&server, "sam@shop.example", "support password").await;
    let page = sam.get("/admin/orders").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    let at = |id: &str| page.html.find(id).unwrap_or(usize::MAX);
    assert!(
        at(&placed[2]) < at(&placed[1]) && at(&placed[1]) < at(&placed[0]),
        "newest first"
    );
    let canceled = sam.get("/admin/orders?status=canceled").await;
    assert!(canceled.html.contains(&placed[1]), "{}", canceled.html);
    assert!(!canceled.html.contains(&placed[0]));
    assert!(
        canceled
            .html
            .contains("<option value=\"canceled\" selected>")
    );
    let none = sam.get("/admin/orders?status=shipped").await;
    assert!(
        none.html.contains("No orders are shipped."),
        "{}",
        none.html
    );
    // A status that does not exist, or a cursor this server did not give: a clear answer.
    let bad = sam.get("/admin/orders?status=lost").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.html);
    let foreign = sam.get("/admin/orders?cursor=not-a-cursor").await;
    assert_eq!(foreign.location.as_deref(), Some("/admin/orders"));
}
