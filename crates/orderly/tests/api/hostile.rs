//! Slow, idle and too many connections against the real binary, on real sockets: each is cut
//! off by its own limit, and none keeps `/healthz` or an order from being answered.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{TestServer, id_of, reference_body};

fn address(server: &TestServer) -> String {
    server.base.trim_start_matches("http://").to_owned()
}

async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(address(server)).await.unwrap()
}

/// The head of a JSON `POST` announcing `length` bytes of body (and, with `expect`, asking for
/// `100 Continue`), without the body.
fn post_head(path: &str, length: usize, expect: bool) -> Vec<u8> {
    let expect = if expect {
        "Expect: 100-continue\r\n"
    } else {
        ""
    };
    format!(
        "POST {path} HTTP/1.1\r\nHost: shop.example\r\nContent-Type: application/json\r\n{expect}Content-Length: {length}\r\n\r\n"
    )
    .into_bytes()
}

/// The first bytes the server sends, within 5 s.
async fn first_bytes(stream: &mut TcpStream) -> String {
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("no answer within 5 s")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// How a connection ended while the client dribbled bytes at it.
#[derive(Debug)]
enum End {
    /// The server closed it without a word.
    Closed,
    /// The server answered (the start of the answer).
    Answered(String),
}

/// Sends `bytes` one at a time, one every `every`, until the server answers or closes the
/// connection; panics if neither happens within `limit`.
async fn dribble(stream: &mut TcpStream, bytes: &[u8], every: Duration, limit: Duration) -> End {
    let started = Instant::now();
    let mut next = 0;
    let mut buf = [0u8; 4096];
    loop {
        assert!(
            started.elapsed() < limit,
            "the connection was still open after {limit:?}"
        );
        tokio::select! {
            read = stream.read(&mut buf) => {
                return match read {
                    Ok(0) | Err(_) => End::Closed,
                    Ok(n) => End::Answered(String::from_utf8_lossy(&buf[..n]).into_owned()),
                };
            }
            () = tokio::time::sleep(every) => {
                if next < bytes.len() {
                    if stream.write_all(&bytes[next..=next]).await.is_err() {
                        return End::Closed;
                    }
                    next += 1;
                }
            }
        }
    }
}

/// Reads one whole answer with a `content-length`; returns its head and body.
async fn read_answer(stream: &mut TcpStream) -> (String, String) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("no answer within 5 s")
            .unwrap();
        assert!(n > 0, "closed before the answer was whole");
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return (head.to_owned(), body.to_owned());
            }
        }
    }
}

/// Waits for the server to close an idle connection; panics after `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 64];
    match tokio::time::timeout(limit, stream.read(&mut buf)).await {
        Ok(Ok(0) | Err(_)) => started.elapsed(),
        Ok(Ok(n)) => panic!("unexpected bytes: {:?}", String::from_utf8_lossy(&buf[..n])),
        Err(_) => panic!("the idle connection was still open after {limit:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_its_headers_a_byte_at_a_time_is_disconnected_at_the_header_timeout() {
    let server = TestServer::start(&["--header-timeout-secs", "1"]).await;
    let mut stream = connect(&server).await;
    let started = Instant::now();
    let end = dribble(
        &mut stream,
        b"GET /healthz HTTP/1.1\r\nHost: shop.example\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa\r\n",
        Duration::from_millis(200),
        Duration::from_secs(5),
    )
    .await;
    assert!(matches!(end, End::Closed), "{end:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed before the timeout: {:?}",
        started.elapsed()
    );
    // The server itself is fine.
    let (code, _) = server.get("/healthz").await;
    assert_eq!(code, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_its_body_a_byte_at_a_time_gets_408_at_the_body_timeout() {
    let server = TestServer::start(&["--body-timeout-secs", "1"]).await;
    let mut stream = connect(&server).await;
    // Opening a cart is public: the body is read.
    stream
        .write_all(&post_head("/v1/carts", 1000, false))
        .await
        .unwrap();
    let started = Instant::now();
    let end = dribble(
        &mut stream,
        &[b' '; 1000],
        Duration::from_millis(200),
        Duration::from_secs(5),
    )
    .await;
    let End::Answered(answer) = end else {
        panic!("expected an answer, got {end:?}");
    };
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(answer.contains("request-timeout"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_who_may_not_call_a_route_is_refused_before_its_body_is_read() {
    let server = TestServer::start(&["--body-timeout-secs", "30"]).await;
    let mut stream = connect(&server).await;
    // Placing an order needs credentials: the 401 comes at once, without waiting for the
    // thousand bytes announced.
    stream
        .write_all(&post_head("/v1/orders", 1000, false))
        .await
        .unwrap();
    let answer = first_bytes(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    // Nothing was placed.
    let (_, orders) = server.get("/v1/orders").await;
    assert_eq!(orders["items"].as_array().unwrap().len(), 0, "{orders}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_serves_requests_and_closes_after_the_idle_timeout() {
    let server = TestServer::start(&["--idle-timeout-secs", "1"]).await;
    let mut stream = connect(&server).await;
    let mut answered = Instant::now();
    for i in 0..3 {
        if i > 0 {
            // Well within the idle timeout: the same connection serves the next one.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: shop.example\r\n\r\n")
            .await
            .unwrap();
        let (head, body) = read_answer(&mut stream).await;
        answered = Instant::now();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(body.contains("\"ok\""), "{body}");
    }
    closed_within(&mut stream, Duration::from_secs(5)).await;
    let idle = answered.elapsed();
    assert!(
        idle >= Duration::from_millis(900),
        "closed after {idle:?} idle"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_connection_is_busy_a_new_one_is_refused_at_once_with_503() {
    let server = TestServer::start(&["--max-connections", "16", "--body-timeout-secs", "60"]).await;
    // Sixteen requests whose bodies never finish: all busy, none may be closed to make room.
    // `100 Continue` comes back once the server reads the body: each is surely in flight.
    let mut busy = Vec::new();
    for _ in 0..16 {
        let mut s = connect(&server).await;
        s.write_all(&post_head("/v1/carts", 100, true))
            .await
            .unwrap();
        let interim = first_bytes(&mut s).await;
        assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
        s.write_all(b"{").await.unwrap();
        busy.push(s);
    }
    let mut extra = connect(&server).await;
    let started = Instant::now();
    let mut answer = String::new();
    extra.read_to_string(&mut answer).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    assert!(answer.contains("\"code\":\"unavailable\""), "{answer}");
    // Once they give up, the server takes connections again.
    drop(busy);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(r) = server.anonymous().get(server.url("/healthz")).send().await
            && r.status() == 200
        {
            break;
        }
        assert!(Instant::now() < deadline, "healthz never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_idle_and_slow_connections_never_stops_healthz_or_an_order() {
    // The test opens more sockets than the common default soft limit of 1,024.
    let _ = orderly_api::server::raise_open_files_limit();
    // The server gets 512 open files in all, so 1,100 idle connections are more than it can
    // hold at once.
    let server = TestServer::start_with_file_limit(512, &[]).await;
    let mut idle = Vec::new();
    for _ in 0..1_100 {
        idle.push(connect(&server).await);
    }
    // Slow senders of headers and of bodies, still trickling while the real requests come.
    let mut slow = Vec::new();
    for i in 0..40 {
        let mut s = connect(&server).await;
        let head = if i % 2 == 0 {
            b"GET /v1/products HTTP/1.1\r\nHost: shop.example\r\n".to_vec()
        } else {
            post_head("/v1/carts", 5000, false)
        };
        s.write_all(&head).await.unwrap();
        slow.push(tokio::spawn(async move {
            for _ in 0..40 {
                if s.write_all(b" ").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }));
    }
    // The test client has made no request yet: each of its requests opens a new connection.
    let fresh = &server.client;
    let started = Instant::now();
    let health = tokio::time::timeout(
        Duration::from_secs(1),
        fresh.get(server.url("/healthz")).send(),
    )
    .await
    .expect("healthz not answered within 1 s during the flood")
    .unwrap();
    assert_eq!(health.status(), 200);
    let placed = tokio::time::timeout(
        Duration::from_secs(1),
        fresh
            .post(server.url("/v1/orders"))
            .json(&reference_body())
            .send(),
    )
    .await
    .expect("an order not answered within 1 s during the flood")
    .unwrap();
    assert_eq!(placed.status(), 201);
    let order: serde_json::Value = placed.json().await.unwrap();
    eprintln!("healthz and an order answered in {:?}", started.elapsed());
    server.wait_for(&id_of(&order), "paid").await;
    let log = server.log();
    assert!(log.contains("open-files limit soft=512 hard=512"), "{log}");
    assert!(log.contains("allows fewer connections"), "{log}");
    for task in slow {
        task.abort();
    }
    drop(idle);
}
