//! Accounts and access over HTTP: the authorization matrix over every declared route and every
//! kind of caller, IDOR attempts in REST and GraphQL, tokens (tampering, rotation, revocation),
//! rate limits and the audit log. On SQLite and PostgreSQL.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::common::{TestServer, client_with, id_of, on_postgres, reference_body, status_and_json};

/// Makes a staff user with `orderly user create`, as the README shows for the first admin.
pub(crate) async fn create_staff(server: &TestServer, email: &str, role: &str, password: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_orderly"))
        .args(["user", "create", "--database-url", &server.db])
        .args(["--email", email, "--role", role, "--name", "Staff ✨"])
        .env_remove("ORDERLY_CONFIG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{password}\n").as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "user create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn post_anon(server: &TestServer, path: &str, body: &Value) -> (u16, Value) {
    let r = server
        .anonymous()
        .post(server.url(path))
        .json(body)
        .send()
        .await
        .unwrap();
    status_and_json(r).await
}

pub(crate) async fn staff_token(server: &TestServer, email: &str, password: &str) -> String {
    let (code, tokens) = post_anon(
        server,
        "/v1/auth/staff/login",
        &json!({"email": email, "password": password}),
    )
    .await;
    assert_eq!(code, 200, "{tokens}");
    tokens["accessToken"].as_str().unwrap().to_owned()
}

/// Registers a customer; `(customer id, tokens)`.
async fn register(server: &TestServer, email: &str, name: &str) -> (String, Value) {
    let (code, body) = post_anon(
        server,
        "/v1/auth/register",
        &json!({"email": email, "password": "correct horse battery", "name": name}),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    (
        body["profile"]["customerId"].as_str().unwrap().to_owned(),
        body["tokens"].clone(),
    )
}

fn bearer(tokens: &Value) -> reqwest::Client {
    client_with(tokens["accessToken"].as_str().unwrap())
}

/// Who may call, in the test's own words: `public`, `customer` (customers only), a permission
/// (staff and keys holding it), or `customer|<permission>`.
const MATRIX: &[(&str, &str, &str)] = &[
    ("POST", "/v1/auth/register", "public"),
    ("POST", "/v1/auth/login", "public"),
    ("POST", "/v1/auth/staff/login", "public"),
    ("POST", "/v1/auth/refresh", "public"),
    ("POST", "/v1/auth/logout", "public"),
    ("GET", "/v1/me", "customer"),
    ("PATCH", "/v1/me", "customer"),
    ("GET", "/v1/staff/users", "users:manage"),
    ("POST", "/v1/staff/users", "users:manage"),
    ("PATCH", "/v1/staff/users/{email}", "users:manage"),
    ("GET", "/v1/api-keys", "keys:manage"),
    ("POST", "/v1/api-keys", "keys:manage"),
    ("DELETE", "/v1/api-keys/{id}", "keys:manage"),
    ("GET", "/v1/audit", "audit:read"),
    ("POST", "/v1/orders", "customer|orders:place"),
    ("GET", "/v1/orders", "customer|orders:read"),
    ("GET", "/v1/orders/{id}", "customer|orders:read"),
    ("GET", "/v1/orders/{id}/events", "customer|orders:read"),
    ("POST", "/v1/orders/{id}/cancel", "customer|orders:cancel"),
    ("POST", "/v1/orders/{id}/refunds", "orders:refund"),
    ("GET", "/v1/orders/{id}/notes", "orders:read"),
    ("POST", "/v1/orders/{id}/notes", "orders:note"),
    ("POST", "/v1/orders/{id}/messages", "orders:note"),
    (
        "PUT",
        "/v1/orders/{id}/shipping-address",
        "customer|orders:edit",
    ),
    ("POST", "/v1/orders/{id}/retry", "orders:retry"),
    ("GET", "/v1/escalations", "escalations:read"),
    ("POST", "/v1/orders/{id}/ship", "orders:fulfil"),
    ("POST", "/v1/orders/{id}/undeliverable", "orders:fulfil"),
    ("POST", "/v1/orders/{id}/deliver", "orders:fulfil"),
    ("GET", "/v1/products", "public"),
    ("POST", "/v1/products", "catalog:write"),
    ("GET", "/v1/products/{id}", "public"),
    ("PATCH", "/v1/products/{id}", "catalog:write"),
    ("POST", "/v1/customers", "customers:write"),
    ("GET", "/v1/customers/{id}", "customer|customers:read"),
    ("GET", "/v1/inventory/{productId}", "inventory:read"),
    (
        "POST",
        "/v1/inventory/{productId}/adjustments",
        "inventory:write",
    ),
    ("POST", "/v1/carts", "public"),
    ("GET", "/v1/carts/{id}", "public"),
    ("POST", "/v1/carts/{id}/lines", "public"),
    ("PATCH", "/v1/carts/{id}/lines/{productId}", "public"),
    ("DELETE", "/v1/carts/{id}/lines/{productId}", "public"),
    ("POST", "/v1/carts/{id}/checkout", "public"),
    ("GET", "/v1/notifications", "escalations:read"),
    ("POST", "/v1/notifications/retry", "orders:retry"),
    (
        "GET",
        "/v1/customers/{id}/notification-preferences",
        "customer|customers:read",
    ),
    (
        "PUT",
        "/v1/customers/{id}/notification-preferences",
        "customer|customers:write",
    ),
    ("GET", "/v1/rates", "public"),
    ("PUT", "/v1/rates/{currency}", "rates:write"),
    ("GET", "/graphql", "public"),
    ("POST", "/graphql", "public"),
    ("GET", "/graphql/assets/{file}", "public"),
    ("GET", "/metrics", "metrics:read"),
    ("GET", "/healthz", "public"),
    ("GET", "/readyz", "public"),
    ("GET", "/openapi.json", "public"),
    ("GET", "/docs", "public"),
    ("GET", "/", "public"),
    ("POST", "/v1/webhooks/stripe", "public"),
];

/// What each role holds, written out here rather than taken from the code under test.
fn role_holds(role: &str, permission: &str) -> bool {
    let support = [
        "orders:read",
        "orders:note",
        "orders:edit",
        "orders:retry",
        "orders:cancel",
        "orders:refund",
        "escalations:read",
        "customers:read",
        "inventory:read",
    ];
    let manager_adds = [
        "orders:place",
        "orders:cancel-paid",
        "orders:refund-any",
        "orders:fulfil",
        "catalog:write",
        "customers:write",
        "inventory:write",
        "rates:write",
    ];
    let engineer = [
        "orders:read",
        "escalations:read",
        "errors:read",
        "customers:read",
        "inventory:read",
        "metrics:read",
    ];
    match role {
        "support" => support.contains(&permission),
        "manager" => support.contains(&permission) || manager_adds.contains(&permission),
        "admin" => true,
        "engineer" => engineer.contains(&permission),
        // The tests' own key holds every scope a key may; the reader key only orders:read.
        "key:all" => !matches!(permission, "users:manage" | "keys:manage"),
        "key:orders:read" => permission == "orders:read",
        _ => false,
    }
}

fn allowed(rule: &str, caller: &str) -> bool {
    rule.split('|').any(|part| match part {
        "public" => true,
        "customer" => caller == "customer",
        permission => role_holds(caller, permission),
    })
}

async fn walk_the_matrix(server: &TestServer) {
    // Every declared route has a row, and every row a route: a new route fails here until
    // someone decides who may call it.
    let out = Command::new(env!("CARGO_BIN_EXE_orderly"))
        .args(["routes", "--json"])
        .output()
        .await
        .unwrap();
    let declared: BTreeSet<(String, String)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["method"].as_str().unwrap().to_owned(),
                v["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let rows: BTreeSet<(String, String)> = MATRIX
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(
        declared.difference(&rows).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "routes without a matrix row"
    );
    assert_eq!(
        rows.difference(&declared).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "matrix rows for routes that do not exist"
    );

    // The callers: nobody, a customer, every staff role, and two API keys.
    let password = "staff password 🔐";
    let mut callers: BTreeMap<&str, reqwest::Client> = BTreeMap::new();
    for role in ["support", "manager", "admin", "engineer"] {
        let email = format!("{role}@shop.example");
        create_staff(server, &email, role, password).await;
        callers.insert(
            role,
            client_with(&staff_token(server, &email, password).await),
        );
    }
    let (customer_id, tokens) = register(server, "ana@example.com", "Ana Łukasiewicz").await;
    callers.insert("customer", bearer(&tokens));
    callers.insert("anonymous", server.anonymous());
    callers.insert("key:all", server.client.clone());
    let (code, reader) = server
        .post_with(
            &callers["admin"],
            "/v1/api-keys",
            &json!({"name": "reporting", "scopes": ["orders:read"]}),
        )
        .await;
    assert_eq!(code, 201, "{reader}");
    callers.insert(
        "key:orders:read",
        client_with(reader["key"].as_str().unwrap()),
    );

    // Things for the paths to name: the customer's own order, a product, a cart.
    let mut body = reference_body();
    body["customerId"] = json!(customer_id);
    let order = id_of(&server.place(&body).await);
    let (_, cart) = post_anon(server, "/v1/carts", &json!({})).await;
    let cart = cart["id"].as_str().unwrap().to_owned();

    for (method, path, rule) in MATRIX {
        let concrete = path
            .replace("{email}", "support@shop.example")
            .replace("/v1/api-keys/{id}", "/v1/api-keys/0000000000000000")
            .replace("/v1/orders/{id}", &format!("/v1/orders/{order}"))
            .replace("/v1/products/{id}", "/v1/products/001")
            .replace(
                "/v1/customers/{id}",
                &format!("/v1/customers/{customer_id}"),
            )
            .replace("/v1/carts/{id}", &format!("/v1/carts/{cart}"))
            .replace("{productId}", "001")
            .replace("{currency}", "EUR")
            .replace("{file}", "graphiql.css");
        for (caller, client) in &callers {
            let url = server.url(&concrete);
            let request = match *method {
                "GET" => client.get(&url),
                "DELETE" => client.delete(&url),
                "POST" => client.post(&url).json(&json!({})),
                "PUT" => client.put(&url).json(&json!({})),
                "PATCH" => client.patch(&url).json(&json!({})),
                other => panic!("no method {other}"),
            };
            let status = request.send().await.unwrap().status().as_u16();
            if allowed(rule, caller) {
                assert!(
                    status != 401 && status != 403,
                    "{caller} should pass {method} {path} ({rule}) but got {status}"
                );
            } else {
                let expected = if *caller == "anonymous" { 401 } else { 403 };
                assert_eq!(status, expected, "{caller} on {method} {path} ({rule})");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_every_kind_of_caller_as_the_matrix_says() {
    let server = TestServer::start(&[]).await;
    walk_the_matrix(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_every_kind_of_caller_as_the_matrix_says_on_postgres() {
    let (server, _schema, _dir) = on_postgres(&[]).await;
    walk_the_matrix(&server).await;
}

async fn customers_see_only_their_own(server: &TestServer) {
    let (_, ana_tokens) = register(server, "ana@example.com", "Ana 🌻 Pérez").await;
    let (_bo, bo_tokens) = register(server, "bo@example.com", "박보검").await;
    let (ana, bo) = (bearer(&ana_tokens), bearer(&bo_tokens));
    let ana_id = server.get_with(&ana, "/v1/me").await.1["customerId"]
        .as_str()
        .unwrap()
        .to_owned();

    // Ana places an order for herself; she may not place one for someone else.
    let mut body = reference_body();
    body["customerId"] = json!(ana_id);
    let (code, order) = server.post_with(&ana, "/v1/orders", &body).await;
    assert_eq!(code, 201, "{order}");
    let id = id_of(&order);
    let mut for_other = reference_body();
    for_other["customerId"] = json!("001");
    assert_eq!(
        server.post_with(&ana, "/v1/orders", &for_other).await.0,
        403
    );

    // Bo cannot see, list or cancel Ana's order, in REST …
    assert_eq!(
        server.get_with(&bo, &format!("/v1/orders/{id}")).await.0,
        404
    );
    assert_eq!(
        server
            .get_with(&bo, &format!("/v1/orders/{id}/events"))
            .await
            .0,
        404
    );
    assert_eq!(
        server
            .post_with(&bo, &format!("/v1/orders/{id}/cancel"), &json!({}))
            .await
            .0,
        404
    );
    assert_eq!(
        server
            .get_with(&bo, &format!("/v1/orders?customerId={ana_id}"))
            .await
            .0,
        403
    );
    let (code, bo_list) = server.get_with(&bo, "/v1/orders").await;
    assert_eq!(code, 200);
    assert_eq!(
        bo_list["items"],
        json!([]),
        "Bo's list holds only Bo's orders"
    );
    assert_eq!(
        server
            .get_with(&bo, &format!("/v1/customers/{ana_id}"))
            .await
            .0,
        404
    );

    // … nor in GraphQL.
    let gql = |query: &str, variables: Value| json!({"query": query, "variables": variables});
    let (_, r) = server
        .post_with(
            &bo,
            "/graphql",
            &gql(
                "query($id: ID!) { getOrder(id: $id) { id status } }",
                json!({"id": id}),
            ),
        )
        .await;
    assert_eq!(r["data"]["getOrder"], Value::Null, "{r}");
    let (_, r) = server
        .post_with(
            &bo,
            "/graphql",
            &gql(
                "query($c: ID!) { orders(filter: {customerId: $c}) { nodes { id } } }",
                json!({"c": ana_id}),
            ),
        )
        .await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "forbidden", "{r}");
    let (_, r) = server
        .post_with(
            &bo,
            "/graphql",
            &gql("{ orders { nodes { id } } }", json!({})),
        )
        .await;
    assert_eq!(r["data"]["orders"]["nodes"], json!([]), "{r}");
    let (_, r) = server
        .post_with(
            &bo,
            "/graphql",
            &gql(
                "mutation($id: ID!) { cancelOrder(id: $id) { id } }",
                json!({"id": id}),
            ),
        )
        .await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "not-found", "{r}");
    let (_, r) = server
        .post_with(
            &server.anonymous(),
            "/graphql",
            &gql(
                "query($id: ID!) { getOrder(id: $id) { id } }",
                json!({"id": id}),
            ),
        )
        .await;
    assert_eq!(
        r["errors"][0]["extensions"]["code"], "unauthenticated",
        "{r}"
    );

    // Ana sees and cancels her own, in both.
    let (_, r) = server
        .post_with(
            &ana,
            "/graphql",
            &gql(
                "query($id: ID!) { getOrder(id: $id) { id customer { name } } }",
                json!({"id": id}),
            ),
        )
        .await;
    assert_eq!(
        r["data"]["getOrder"]["customer"]["name"], "Ana 🌻 Pérez",
        "{r}"
    );
    let (code, canceled) = server
        .post_with(
            &ana,
            &format!("/v1/orders/{id}/cancel"),
            &json!({"reason": "changed my mind"}),
        )
        .await;
    assert_eq!(code, 200, "{canceled}");
    let actor = canceled["history"].as_array().unwrap().last().unwrap()["actor"].clone();
    assert_eq!(actor, json!(format!("customer:{ana_id}")));

    // Profiles keep any script byte for byte.
    let address = json!({"name": "Ana 🌻 Pérez", "line1": "東京都千代田区1-1", "city": "東京", "country": "JP"});
    let (code, profile) = server
        .patch_with(
            &ana,
            "/v1/me",
            &json!({"addresses": [address], "defaultCurrency": "JPY"}),
        )
        .await;
    assert_eq!(code, 200, "{profile}");
    let (_, profile) = server.get_with(&ana, "/v1/me").await;
    assert_eq!(profile["addresses"][0], address);
    assert_eq!(profile["defaultCurrency"], "JPY");
    assert_eq!(
        server.get_with(&bo, "/v1/me").await.1["email"],
        "bo@example.com"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_sees_and_cancels_only_their_own_orders() {
    let server = TestServer::start(&[]).await;
    customers_see_only_their_own(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_sees_and_cancels_only_their_own_orders_on_postgres() {
    let (server, _schema, _dir) = on_postgres(&[]).await;
    customers_see_only_their_own(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_spent_and_revoked_credentials_are_refused() {
    let server = TestServer::start(&[]).await;
    let (_, tokens) = register(&server, "cy@example.com", "Cy").await;
    let access = tokens["accessToken"].as_str().unwrap();

    // A token whose payload was changed no longer verifies.
    let parts: Vec<&str> = access.split('.').collect();
    let tampered = format!("{}.{}x.{}", parts[0], parts[1], parts[2]);
    let (code, problem) = server.get_with(&client_with(&tampered), "/v1/me").await;
    assert_eq!(code, 401);
    assert_eq!(problem["code"], "unauthenticated");
    // A malformed header is refused even on a public route.
    let r = server
        .anonymous()
        .get(server.url("/v1/products"))
        .header("authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));

    // A refresh token works once; its replay ends the session, so the new one dies too.
    let first = tokens["refreshToken"].as_str().unwrap();
    let (code, second) =
        post_anon(&server, "/v1/auth/refresh", &json!({"refreshToken": first})).await;
    assert_eq!(code, 200, "{second}");
    assert_eq!(server.get_with(&bearer(&second), "/v1/me").await.0, 200);
    let (code, _) = post_anon(&server, "/v1/auth/refresh", &json!({"refreshToken": first})).await;
    assert_eq!(code, 401, "a spent refresh token is refused");
    let (code, _) = post_anon(
        &server,
        "/v1/auth/refresh",
        &json!({"refreshToken": second["refreshToken"]}),
    )
    .await;
    assert_eq!(
        code, 401,
        "replaying a spent token revoked the whole session"
    );

    // Logging out ends the session.
    let (code, tokens) = post_anon(
        &server,
        "/v1/auth/login",
        &json!({"email": "CY@example.com", "password": "correct horse battery"}),
    )
    .await;
    assert_eq!(
        code, 200,
        "e-mail is matched without regard to case: {tokens}"
    );
    let (code, _) = post_anon(
        &server,
        "/v1/auth/logout",
        &json!({"refreshToken": tokens["refreshToken"]}),
    )
    .await;
    assert_eq!(code, 204);
    let (code, _) = post_anon(
        &server,
        "/v1/auth/refresh",
        &json!({"refreshToken": tokens["refreshToken"]}),
    )
    .await;
    assert_eq!(code, 401);

    // A revoked API key stops working at once.
    create_staff(&server, "root@shop.example", "admin", "admin password!").await;
    let admin = client_with(&staff_token(&server, "root@shop.example", "admin password!").await);
    let (_, key) = server
        .post_with(
            &admin,
            "/v1/api-keys",
            &json!({"name": "shortlived", "scopes": ["orders:read"]}),
        )
        .await;
    let reader = client_with(key["key"].as_str().unwrap());
    assert_eq!(server.get_with(&reader, "/v1/orders").await.0, 200);
    let r = admin
        .delete(server.url(&format!("/v1/api-keys/{}", key["id"].as_str().unwrap())))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(server.get_with(&reader, "/v1/orders").await.0, 401);
    let (_, keys) = server.get_with(&admin, "/v1/api-keys").await;
    assert!(
        keys.as_array()
            .unwrap()
            .iter()
            .all(|k| k.get("key").is_none() && k.get("digest").is_none()),
        "keys are never shown again: {keys}"
    );
    // Keys cannot hold the rights to make people or keys.
    let (code, _) = server
        .post_with(
            &admin,
            "/v1/api-keys",
            &json!({"name": "x", "scopes": ["keys:manage"]}),
        )
        .await;
    assert_eq!(code, 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failed_log_ins_are_limited_and_audited() {
    let server = TestServer::start(&["--orders-per-minute", "2"]).await;
    create_staff(&server, "dee@shop.example", "manager", "manager password").await;
    for _ in 0..5 {
        let (code, p) = post_anon(
            &server,
            "/v1/auth/staff/login",
            &json!({"email": "dee@shop.example", "password": "guess"}),
        )
        .await;
        assert_eq!(code, 401, "{p}");
        assert_eq!(p["detail"], "wrong e-mail or password");
    }
    let r = server
        .anonymous()
        .post(server.url("/v1/auth/staff/login"))
        .json(&json!({"email": "dee@shop.example", "password": "manager password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        429,
        "even the right password waits out the window"
    );
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 0 && wait <= 900, "{wait}");
    assert_eq!(r.headers()["content-type"], "application/problem+json");

    // Another account from the same address is not locked by Dee's failures.
    create_staff(&server, "eve@shop.example", "admin", "admin password!").await;
    let admin = client_with(&staff_token(&server, "eve@shop.example", "admin password!").await);

    // A manager's change is audited with who, what, when and from where.
    let order = id_of(&server.place_reference().await);
    server.wait_for(&order, "paid").await;
    let r = admin
        .post(server.url(&format!("/v1/orders/{order}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (code, log) = server.get_with(&admin, "/v1/audit?limit=500").await;
    assert_eq!(code, 200, "{log}");
    let entries = log.as_array().unwrap();
    let failures = entries
        .iter()
        .filter(|e| e["action"] == "login.failed" && e["actor"] == "staff:dee@shop.example")
        .count();
    assert_eq!(failures, 5, "{log}");
    assert!(entries.iter().all(|e| e["source"] == "127.0.0.1"), "{log}");
    let cancel = entries
        .iter()
        .find(|e| e["action"] == format!("POST /v1/orders/{order}/cancel"))
        .unwrap_or_else(|| panic!("no cancel entry in {log}"));
    assert_eq!(cancel["actor"], "staff:eve@shop.example");
    assert_eq!(cancel["target"], order);
    assert_eq!(cancel["outcome"], "ok");

    // Customers are limited in how fast they order.
    let (customer, tokens) = register(&server, "fay@example.com", "Fay").await;
    let mut body = reference_body();
    body["customerId"] = json!(customer);
    let fay = bearer(&tokens);
    for _ in 0..2 {
        assert_eq!(server.post_with(&fay, "/v1/orders", &body).await.0, 201);
    }
    let r = fay
        .post(server.url("/v1/orders"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn support_notes_an_order_and_corrects_its_address_until_it_ships() {
    let server = TestServer::start(&[]).await;
    create_staff(&server, "sam@shop.example", "support", "support password").await;
    let sam = client_with(&staff_token(&server, "sam@shop.example", "support password").await);
    let (customer, tokens) = register(&server, "gus@example.com", "Gus").await;
    let gus = bearer(&tokens);
    let mut body = reference_body();
    body["customerId"] = json!(customer);
    let order = id_of(&server.post_with(&gus, "/v1/orders", &body).await.1);

    let (code, note) = server
        .post_with(
            &sam,
            &format!("/v1/orders/{order}/notes"),
            &json!({"text": "Kunde rief an – bitte klingeln 🔔"}),
        )
        .await;
    assert_eq!(code, 201, "{note}");
    assert_eq!(note["author"], "staff:sam@shop.example");
    // Notes are for staff: the customer cannot read them.
    assert_eq!(
        server
            .get_with(&gus, &format!("/v1/orders/{order}/notes"))
            .await
            .0,
        403
    );
    let (code, _) = server
        .post_with(
            &sam,
            &format!("/v1/orders/{order}/notes"),
            &json!({"text": "  "}),
        )
        .await;
    assert_eq!(code, 422);

    let address = json!({"name": "Gus Grünwald", "line1": "Straße 1", "city": "Köln", "postalCode": "50667", "country": "DE"});
    let r = sam
        .put(server.url(&format!("/v1/orders/{order}/shipping-address")))
        .json(&address)
        .send()
        .await
        .unwrap();
    let (code, changed) = status_and_json(r).await;
    assert_eq!(code, 200, "{changed}");
    assert_eq!(changed["shippingAddress"], address);
    let (_, notes) = server
        .get_with(&sam, &format!("/v1/orders/{order}/notes"))
        .await;
    assert_eq!(notes[0]["text"], "Kunde rief an – bitte klingeln 🔔");
    assert!(
        notes[1]["text"]
            .as_str()
            .unwrap()
            .contains("Straße 1, Köln, 50667, DE"),
        "{notes}"
    );
    // The correction is part of the order's own record: one version, a history entry naming
    // who made it, and an event, committed with the note.
    let history = changed["history"].as_array().unwrap();
    let entry = history.last().unwrap();
    assert_eq!(entry["event"], "ShippingAddressChanged", "{changed}");
    assert_eq!(entry["actor"], "staff:sam@shop.example");
    assert_eq!(entry["detail"], notes[1]["text"]);
    let (_, events) = server
        .get_with(&sam, &format!("/v1/orders/{order}/events"))
        .await;
    let changes: Vec<_> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["detailType"] == "ShippingAddressChanged")
        .collect();
    assert_eq!(changes.len(), 1, "{events}");
    assert_eq!(changes[0]["orderVersion"], changed["version"]);

    // Once shipped, the address is settled.
    server.wait_for(&order, "paid").await;
    let (code, _) = server
        .post(
            &format!("/v1/orders/{order}/ship"),
            &json!({"carrier": "DHL", "trackingNumber": "1"}),
        )
        .await;
    assert_eq!(code, 200);
    let r = gus
        .put(server.url(&format!("/v1/orders/{order}/shipping-address")))
        .json(&address)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
}

/// A server in `dir` whose payment provider fails every call, with support `sam@shop.example`
/// (`support password`) and engineer `ian@shop.example` (`engineer password`), and the
/// reference order once its payment has run out of retries and it needs attention.
pub(crate) async fn an_order_whose_payment_gave_up(dir: &std::path::Path) -> (TestServer, String) {
    let server = TestServer::start_in(dir, &["--payment-transient-rate", "1"]).await;
    create_staff(&server, "sam@shop.example", "support", "support password").await;
    create_staff(&server, "ian@shop.example", "engineer", "engineer password").await;
    let order = id_of(&server.place_reference().await);
    server
        .wait_until(
            &order,
            |o| !o["needsAttention"].is_null(),
            "needs attention",
        )
        .await;
    (server, order)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn support_retries_a_stuck_order_and_only_engineers_read_its_raw_error() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, order) = an_order_whose_payment_gave_up(dir.path()).await;
    let sam = client_with(&staff_token(&server, "sam@shop.example", "support password").await);
    let ian = client_with(&staff_token(&server, "ian@shop.example", "engineer password").await);
    let (_, seen_by_support) = server.get_with(&sam, &format!("/v1/orders/{order}")).await;
    let (_, seen_by_engineer) = server.get_with(&ian, &format!("/v1/orders/{order}")).await;
    let raw = seen_by_engineer["needsAttention"]["error"]
        .as_str()
        .unwrap();
    assert!(raw.contains("simulated"), "{seen_by_engineer}");
    assert!(
        !seen_by_support.to_string().contains(raw),
        "support does not see the raw error: {seen_by_support}"
    );
    // The queue shows it; only the engineer reads the raw error there too.
    let (_, queue) = server.get_with(&sam, "/v1/escalations").await;
    assert_eq!(queue[0]["orderId"], order.as_str(), "{queue}");
    assert_eq!(queue[0]["step"], "payment");
    assert!(!queue.to_string().contains(raw));
    let (_, queue) = server.get_with(&ian, "/v1/escalations").await;
    assert_eq!(queue[0]["error"], raw);
    // An engineer may look but not retry.
    let (code, _) = server
        .post_with(&ian, &format!("/v1/orders/{order}/retry"), &json!({}))
        .await;
    assert_eq!(code, 403);

    // The provider recovers (the server restarts without the fault); support retries.
    server.terminate().await;
    let server = TestServer::start_in(dir.path(), &[]).await;
    let sam = client_with(&staff_token(&server, "sam@shop.example", "support password").await);
    let (code, retried) = server
        .post_with(&sam, &format!("/v1/orders/{order}/retry"), &json!({}))
        .await;
    assert_eq!(code, 202, "{retried}");
    assert!(retried["needsAttention"].is_null());
    let paid = server.wait_for(&order, "paid").await;
    let events = crate::common::history_events(&paid);
    assert_eq!(events.iter().filter(|e| *e == "PaymentCaptured").count(), 1);
    assert!(events.contains(&"RetryRequested".to_owned()), "{events:?}");
    let (code, _) = server
        .post_with(&sam, &format!("/v1/orders/{order}/retry"), &json!({}))
        .await;
    assert_eq!(code, 409, "nothing to retry any more");
    let (_, open) = server.get_with(&sam, "/v1/escalations").await;
    assert_eq!(open, json!([]), "retried escalations leave the open queue");
    let (_, all) = server.get_with(&sam, "/v1/escalations?open=false").await;
    assert_eq!(all[0]["resolvedBy"], "staff:sam@shop.example", "{all}");
}
