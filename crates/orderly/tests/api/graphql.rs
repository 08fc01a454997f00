//! GraphQL over HTTP against `orderly serve`, on SQLite and on PostgreSQL.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::common::{TestServer, id_of, on_postgres, reference_body};

async fn gql(server: &TestServer, query: &str, variables: Value) -> Value {
    let (status, body) = server
        .post("/graphql", &json!({"query": query, "variables": variables}))
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The data of a query that must succeed.
async fn data(server: &TestServer, query: &str, variables: Value) -> Value {
    let body = gql(server, query, variables).await;
    assert!(body.get("errors").is_none(), "{body}");
    body["data"].clone()
}

/// The stable code of a query's first error.
async fn error_code(server: &TestServer, query: &str, variables: Value) -> (String, Value) {
    let body = gql(server, query, variables).await;
    let error = body["errors"][0].clone();
    let code = error["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no code in {body}"))
        .to_owned();
    (code, error)
}

const FULL_ORDER: &str = r"
query Full($id: ID!) {
  getOrder(id: $id) {
    id status customerId currency itemCount
    customer { id name email }
    lines { productId name quantity unitPrice { amount currency } lineTotal { amount currency } product { id name active } }
    total { amount currency }
    shippingAddress { name line1 city country }
    history { event from to actor }
    shipments { carrier trackingNumber }
    payment { providerRef amount { amount currency } }
    needsAttention { step }
    reason version createdAt updatedAt
  }
}";

const PLACE: &str = r"
mutation Place($input: PlaceOrderInput!, $key: String) {
  placeOrder(input: $input, idempotencyKey: $key) { replayed order { id status total { amount currency } } }
}";

async fn reference_query_full_graph_and_mutations(server: &TestServer) {
    // Placed over REST, read over GraphQL: both sit on the same use cases.
    let id = id_of(&server.place_reference().await);
    server.wait_for(&id, "paid").await;

    let reference = format!(r#"query {{ getOrder(id: "{id}") {{ id status }} }}"#);
    assert_eq!(
        gql(server, &reference, Value::Null).await,
        json!({"data": {"getOrder": {"id": id, "status": "paid"}}})
    );
    let missing = data(server, r#"{ a: getOrder(id: "0190d1c2-0000-7000-8000-000000000000") { id } b: getOrder(id: "not an id") { id } }"#, Value::Null).await;
    assert_eq!(missing, json!({"a": null, "b": null}));

    // A new order through the mutation, with an address in several scripts.
    let address =
        json!({"name": "山田 太郎 🎉", "line1": "Straße 1 🏠", "city": "Zürich", "country": "CH"});
    let mut input = reference_body();
    input["shippingAddress"] = address.clone();
    let vars = json!({"input": input, "key": "gql-order-1"});
    let placed = data(server, PLACE, vars.clone()).await["placeOrder"].clone();
    assert_eq!(placed["replayed"], false, "{placed}");
    assert_eq!(placed["order"]["status"], "placed");
    assert_eq!(
        placed["order"]["total"],
        json!({"amount": "279.98", "currency": "USD"})
    );
    let new_id = placed["order"]["id"].as_str().unwrap().to_owned();
    let again = data(server, PLACE, vars).await["placeOrder"].clone();
    assert_eq!(again["replayed"], true);
    assert_eq!(again["order"]["id"], new_id.as_str());
    let mut other = reference_body();
    other["items"][0]["quantity"] = json!(2);
    let (code, error) =
        error_code(server, PLACE, json!({"input": other, "key": "gql-order-1"})).await;
    assert_eq!(code, "idempotency-key-reused", "{error}");
    assert_eq!(error["extensions"]["status"], 422);
    assert!(
        error["extensions"]["type"]
            .as_str()
            .unwrap()
            .ends_with("/idempotency-key-reused")
    );

    let bad = json!({"customerId": "001", "items": [{"productId": "nope", "quantity": 0}]});
    let (code, error) = error_code(server, PLACE, json!({"input": bad})).await;
    assert_eq!(code, "validation", "{error}");
    let fields: Vec<&str> = error["extensions"]["fieldErrors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"items[0].quantity"), "{error}");

    server.wait_for(&new_id, "paid").await;
    let ship = r#"mutation($id: ID!) { shipOrder(id: $id, carrier: "DHL", trackingNumber: "JD0146") { status shipments { carrier trackingNumber } } }"#;
    let shipped = data(server, ship, json!({"id": new_id})).await["shipOrder"].clone();
    assert_eq!(shipped["status"], "shipped");
    assert_eq!(
        shipped["shipments"],
        json!([{"carrier": "DHL", "trackingNumber": "JD0146"}])
    );
    let (code, _) = error_code(server, ship, json!({"id": new_id})).await;
    assert_eq!(code, "illegal-transition");

    let full = data(server, FULL_ORDER, json!({"id": new_id})).await["getOrder"].clone();
    assert_eq!(full["status"], "shipped");
    assert_eq!(full["itemCount"], 2);
    assert_eq!(full["customer"]["name"], "Alice Johnson");
    assert_eq!(
        full["lines"][0]["product"]["name"],
        full["lines"][0]["name"]
    );
    assert_eq!(full["lines"][1]["unitPrice"]["currency"], "USD");
    for field in ["name", "line1", "city", "country"] {
        assert_eq!(
            full["shippingAddress"][field].as_str().unwrap().as_bytes(),
            address[field].as_str().unwrap().as_bytes()
        );
    }
    let events: Vec<&str> = full["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "OrderPlaced",
            "InventoryReserved",
            "PaymentCaptured",
            "OrderShipped"
        ]
    );
    assert_eq!(full["payment"]["amount"]["amount"], "279.98");
    assert!(full["needsAttention"].is_null());

    let deliver = r"mutation($id: ID!) { deliverOrder(id: $id) { status } }";
    assert_eq!(
        data(server, deliver, json!({"id": new_id})).await["deliverOrder"]["status"],
        "delivered"
    );
    let cancel = r#"mutation($id: ID!) { cancelOrder(id: $id, reason: "too late") { status } }"#;
    let (code, error) = error_code(server, cancel, json!({"id": new_id})).await;
    assert_eq!(code, "illegal-transition", "{error}");
    assert_eq!(error["extensions"]["status"], 409);
    let canceled = data(server, cancel, json!({"id": id})).await;
    assert_eq!(canceled["cancelOrder"]["status"], "canceled");
    let (code, _) = error_code(server, cancel, json!({"id": "nope"})).await;
    assert_eq!(code, "not-found");
}

#[tokio::test]
async fn reference_query_full_graph_and_mutations_on_sqlite() {
    let server = TestServer::start(&[]).await;
    reference_query_full_graph_and_mutations(&server).await;
}

#[tokio::test]
async fn reference_query_full_graph_and_mutations_on_postgres() {
    let (server, _schema, _dir) = on_postgres(&[]).await;
    reference_query_full_graph_and_mutations(&server).await;
}

/// `orderly_storage_calls_total` of the reads a request can make, summed.
async fn storage_reads(server: &TestServer) -> u64 {
    let text = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let reads = [
        "order",
        "list_orders",
        "customer",
        "customers",
        "product",
        "products",
        "list_products",
    ];
    let calls: HashMap<&str, u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("orderly_storage_calls_total{op=\""))
        .filter_map(|l| l.split_once("\"} "))
        .map(|(op, n)| (op, n.parse().unwrap()))
        .collect();
    assert!(calls.contains_key("list_orders"), "{text}");
    reads
        .iter()
        .map(|op| calls.get(op).copied().unwrap_or(0))
        .sum()
}

const PAGE_WITH_GRAPH: &str =
    "{ orders(first: 50) { edges { node { customer { name } lines { product { name } } } } } }";

async fn page_query_reads(server: &TestServer, expect: usize) -> u64 {
    server.wait_idle().await;
    let before = storage_reads(server).await;
    let page = data(server, PAGE_WITH_GRAPH, Value::Null).await;
    let after = storage_reads(server).await;
    let edges = page["orders"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), expect);
    for edge in edges {
        assert!(edge["node"]["customer"]["name"].is_string(), "{edge}");
        assert_eq!(
            edge["node"]["lines"][0]["product"]["name"],
            "Wireless Headphones"
        );
    }
    after - before
}

async fn storage_reads_do_not_grow_with_the_page(server: &TestServer) {
    let place = |customer: &'static str| {
        let mut body = reference_body();
        body["customerId"] = json!(customer);
        body
    };
    for i in 0..5 {
        server
            .place(&place(if i % 2 == 0 { "001" } else { "002" }))
            .await;
    }
    let few = page_query_reads(server, 5).await;
    for i in 0..45 {
        server
            .place(&place(if i % 2 == 0 { "001" } else { "002" }))
            .await;
    }
    let many = page_query_reads(server, 50).await;
    assert_eq!(
        few, many,
        "storage reads grew with the number of orders: {few} for 5, {many} for 50"
    );
    assert!(
        many <= 3,
        "one read each for orders, customers, products; got {many}"
    );
}

#[tokio::test]
async fn storage_reads_do_not_grow_with_the_page_on_sqlite() {
    let server = TestServer::start(&[]).await;
    storage_reads_do_not_grow_with_the_page(&server).await;
}

#[tokio::test]
async fn storage_reads_do_not_grow_with_the_page_on_postgres() {
    let (server, _schema, _dir) = on_postgres(&[]).await;
    storage_reads_do_not_grow_with_the_page(&server).await;
}

#[tokio::test]
async fn orders_page_as_a_relay_connection_with_filters() {
    let server = TestServer::start(&[]).await;
    let mut placed = Vec::new();
    for i in 0..7 {
        let mut body = reference_body();
        body["customerId"] = json!(if i < 3 { "002" } else { "001" });
        placed.push(id_of(&server.place(&body).await));
    }
    placed.reverse(); // newest first
    let page = r"query($after: String, $filter: OrderFilterInput) {
      orders(first: 3, after: $after, filter: $filter) {
        edges { cursor node { id customerId } }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      }
    }";
    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let orders = data(&server, page, json!({"after": after})).await["orders"].clone();
        let edges = orders["edges"].as_array().unwrap().clone();
        assert!(edges.len() <= 3);
        seen.extend(
            edges
                .iter()
                .map(|e| e["node"]["id"].as_str().unwrap().to_owned()),
        );
        assert_eq!(orders["pageInfo"]["hasPreviousPage"], !after.is_null());
        assert_eq!(
            orders["pageInfo"]["endCursor"],
            edges.last().unwrap()["cursor"]
        );
        if orders["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = orders["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(seen, placed);

    // Any edge's cursor resumes right after that edge.
    let first = data(&server, page, json!({})).await["orders"]["edges"].clone();
    let resumed = data(&server, page, json!({"after": first[0]["cursor"]})).await;
    let ids: Vec<&str> = resumed["orders"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, &placed[1..4]);

    let mine = data(
        &server,
        "{ orders(filter: {customerId: \"002\"}) { edges { node { customerId } } } }",
        Value::Null,
    )
    .await;
    assert_eq!(mine["orders"]["edges"].as_array().unwrap().len(), 3);
    let paid_none = data(
        &server,
        "{ orders(filter: {status: \"delivered\"}) { edges { node { id } } } }",
        Value::Null,
    )
    .await;
    assert_eq!(paid_none["orders"]["edges"], json!([]));

    for (query, field) in [
        ("{ orders(first: 0) { edges { cursor } } }", "first"),
        ("{ orders(first: 101) { edges { cursor } } }", "first"),
        (
            "{ orders(after: \"garbage\") { edges { cursor } } }",
            "after",
        ),
        ("{ orders(after: \"x9~0\") { edges { cursor } } }", "after"),
        (
            "{ orders(filter: {status: \"lost\"}) { edges { cursor } } }",
            "filter.status",
        ),
    ] {
        let (code, error) = error_code(&server, query, Value::Null).await;
        assert_eq!(code, "validation", "{query}: {error}");
        assert_eq!(
            error["extensions"]["fieldErrors"][0]["field"], field,
            "{query}: {error}"
        );
    }

    let products = data(&server, "{ products(first: 1) { edges { node { id name price(currency: \"USD\") { amount } } } pageInfo { hasNextPage } } product(id: \"002\") { name } customer(id: \"002\") { name } }", Value::Null).await;
    assert_eq!(products["products"]["edges"][0]["node"]["id"], "001");
    assert_eq!(
        products["products"]["edges"][0]["node"]["price"]["amount"],
        "79.99"
    );
    assert_eq!(products["products"]["pageInfo"]["hasNextPage"], true);
    assert_eq!(products["product"]["name"], "Smartwatch");
    assert!(products["customer"]["name"].is_string());
}

/// The query GraphiQL sends to learn the schema (graphql-js `getIntrospectionQuery()`).
use orderly_api::graphql::INTROSPECTION_QUERY as INTROSPECTION;

#[tokio::test]
async fn limits_refuse_abuse_while_introspection_and_graphiql_work() {
    let server = TestServer::start(&[]).await;
    let schema = data(&server, INTROSPECTION, Value::Null).await;
    let types = schema["__schema"]["types"].as_array().unwrap();
    assert!(types.iter().any(|t| t["name"] == "Order"));

    let mut deep = String::from("{ __type(name: \"Order\") { ");
    for _ in 0..20 {
        deep.push_str("ofType { ");
    }
    deep.push_str("name");
    deep.push_str(&" }".repeat(22));
    let (code, error) = error_code(&server, &deep, Value::Null).await;
    assert_eq!(code, "query-too-deep", "{error}");

    let aliases: String = (0..20)
        .map(|i| format!("a{i}: orders(first: 100) {{ edges {{ node {{ id status customer {{ name }} }} }} }} "))
        .collect();
    let (code, error) = error_code(&server, &format!("{{ {aliases} }}"), Value::Null).await;
    assert_eq!(code, "query-too-complex", "{error}");
    // A thousand cheap aliases stay within depth and cost; the alias cap refuses them.
    let aliases: String = (0..1000)
        .map(|i| format!("a{i}: getOrder(id: \"{i}\") {{ id }} "))
        .collect();
    let (code, error) = error_code(&server, &format!("{{ {aliases} }}"), Value::Null).await;
    assert_eq!(code, "query-too-many-aliases", "{error}");
    // Thirty are fine.
    let aliases: String = (0..30)
        .map(|i| format!("a{i}: getOrder(id: \"{i}\") {{ id }} "))
        .collect();
    let answer = data(&server, &format!("{{ {aliases} }}"), Value::Null).await;
    assert_eq!(answer["a29"], Value::Null);
    // Fields multiplied through a fragment count where they are used.
    let fields = "id status ".repeat(30);
    let spreads = "...F ".repeat(20);
    let query =
        format!("{{ getOrder(id: \"x\") {{ {spreads} }} }} fragment F on Order {{ {fields} }}");
    let (code, error) = error_code(&server, &query, Value::Null).await;
    assert_eq!(code, "query-too-large", "{error}");
    let (code, _) = error_code(&server, "{ orders { nope } }", Value::Null).await;
    assert_eq!(code, "invalid-query");
    let (code, _) = error_code(&server, "{ orders ", Value::Null).await;
    assert_eq!(code, "invalid-query");

    // Not GraphQL at all: the REST problem shape.
    let r = server
        .client
        .post(server.url("/graphql"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/problem+json");

    // GraphiQL and every file it loads come from Orderly itself.
    let page = server
        .client
        .get(server.url("/graphql"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("https://"),
        "the page must not load anything from elsewhere"
    );
    for asset in ["graphiql.css", "react.js", "react-dom.js", "graphiql.js"] {
        let path = format!("/graphql/assets/{asset}");
        assert!(html.contains(&path), "{path} not in the page");
        let gz = server
            .client
            .get(server.url(&path))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(gz.status(), 200);
        assert_eq!(gz.headers()["content-encoding"], "gzip");
        let gz_len = gz.bytes().await.unwrap().len();
        let plain = server.client.get(server.url(&path)).send().await.unwrap();
        assert!(plain.headers().get("content-encoding").is_none());
        let kind = plain.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(kind.starts_with(if asset.ends_with(".css") {
            "text/css"
        } else {
            "text/javascript"
        }));
        let body = plain.bytes().await.unwrap();
        assert!(
            body.len() > gz_len,
            "{asset}: {} unpacked vs {gz_len} gzipped",
            body.len()
        );
    }
    let (status, problem) = server.get("/graphql/assets/nope.js").await;
    assert_eq!((status, problem["code"].as_str()), (404, Some("not-found")));
}
