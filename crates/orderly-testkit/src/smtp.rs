//! A small, real SMTP server on 127.0.0.1 for tests: it speaks enough of RFC 5321 (EHLO/HELO,
//! MAIL, RCPT, DATA with dot-unstuffing, RSET, NOOP, QUIT) for a real client such as lettre,
//! captures every message it accepts, can be stopped and started again on the same port, and
//! can be told to answer `451` (try again later) to every message.
//!
//! ```text
//! let smtp = SmtpServer::start().await;          // 127.0.0.1:<free port>
//! … send to smtp.addr() …
//! let mails = smtp.wait_for(2).await;            // polls with a deadline, never sleeps blind
//! let parsed = mails[0].parsed();                // subject, text and HTML bodies, decoded
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// One accepted message: the envelope and the raw bytes of the DATA section.
#[derive(Clone, Debug)]
pub struct Captured {
    /// `MAIL FROM` address.
    pub from: String,
    /// `RCPT TO` addresses.
    pub to: Vec<String>,
    /// The message as sent (headers and body, CRLF line ends, dots unstuffed).
    pub data: Vec<u8>,
}

/// A captured message, decoded.
#[derive(Clone, Debug)]
pub struct Parsed {
    /// The `Subject`, decoded from RFC 2047.
    pub subject: String,
    /// The `Message-ID`, without angle brackets.
    pub message_id: String,
    /// The `To` header's addresses.
    pub to: Vec<String>,
    /// The `From` header's address.
    pub from: String,
    /// The top-level content type (`multipart/alternative`).
    pub content_type: String,
    /// The text/plain part, transfer encoding undone, SMTP's CRLF line ends as LF.
    pub text: String,
    /// The text/html part, transfer encoding undone, SMTP's CRLF line ends as LF.
    pub html: String,
}

impl Captured {
    /// Decodes the message.
    ///
    /// # Panics
    /// If it is not a parseable e-mail.
    #[must_use]
    pub fn parsed(&self) -> Parsed {
        use mail_parser::MimeHeaders;
        let message = mail_parser::MessageParser::default()
            .parse(&self.data)
            .expect("a parseable e-mail");
        let addresses = |a: Option<&mail_parser::Address>| -> Vec<String> {
            a.map(|a| {
                a.iter()
                    .filter_map(|m| m.address().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
        };
        let content_type = message
            .content_type()
            .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or_default()))
            .unwrap_or_default();
        Parsed {
            subject: message.subject().unwrap_or_default().to_owned(),
            message_id: message.message_id().unwrap_or_default().to_owned(),
            to: addresses(message.to()),
            from: addresses(message.from())
                .into_iter()
                .next()
                .unwrap_or_default(),
            content_type,
            text: message
                .body_text(0)
                .map(|t| t.replace("\r\n", "\n"))
                .unwrap_or_default(),
            html: message
                .body_html(0)
                .map(|t| t.replace("\r\n", "\n"))
                .unwrap_or_default(),
        }
    }
}

struct Shared {
    messages: Mutex<Vec<Captured>>,
    failing: AtomicBool,
}

/// The server. Dropping it stops it.
pub struct SmtpServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    running: Option<(watch::Sender<bool>, JoinHandle<()>)>,
}

impl SmtpServer {
    /// Starts on a free port of 127.0.0.1.
    pub async fn start() -> SmtpServer {
        Self::start_on("127.0.0.1:0".parse().expect("an address")).await
    }

    /// Starts on `addr`.
    ///
    /// # Panics
    /// If it cannot listen there.
    pub async fn start_on(addr: SocketAddr) -> SmtpServer {
        let listener = TcpListener::bind(addr).await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            messages: Mutex::new(Vec::new()),
            failing: AtomicBool::new(false),
        });
        let mut server = SmtpServer {
            addr,
            shared,
            running: None,
        };
        server.run(listener);
        server
    }

    fn run(&mut self, listener: TcpListener) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let shared = Arc::clone(&self.shared);
        let task = tokio::spawn(async move {
            let mut stop = stop_rx.clone();
            let mut sessions = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        if let Ok((stream, _)) = accepted {
                            let shared = Arc::clone(&shared);
                            let stop = stop_rx.clone();
                            sessions.spawn(session(stream, shared, stop));
                        }
                    }
                    _ = stop.changed() => break,
                }
            }
            // Stopping drops the listener and every open connection, like a server going down.
            sessions.abort_all();
        });
        self.running = Some((stop_tx, task));
    }

    /// Where it listens.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Stops listening and drops every connection; messages captured so far are kept.
    pub async fn stop(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            let _ = stop.send(true);
            let _ = task.await;
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&mut self) {
        self.stop().await;
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("cannot listen on {} again: {e}", self.addr),
            }
        };
        self.run(listener);
    }

    /// While true, every `MAIL FROM` is answered `451 4.3.0` (try again later).
    pub fn set_failing(&self, failing: bool) {
        self.shared.failing.store(failing, Ordering::SeqCst);
    }

    /// Every message accepted so far.
    #[must_use]
    pub fn messages(&self) -> Vec<Captured> {
        self.shared.messages.lock().expect("lock").clone()
    }

    /// Waits until at least `count` messages were accepted (at most 10 s), and returns them all.
    ///
    /// # Panics
    /// When they do not come in time.
    pub async fn wait_for(&self, count: usize) -> Vec<Captured> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "expected {count} messages, got {}: {:?}",
                messages.len(),
                messages.iter().map(|m| &m.to).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            let _ = stop.send(true);
            task.abort();
        }
    }
}

/// Takes the address out of `FROM:<a@b> SIZE=…` or `TO:<a@b>`.
fn path_of(arg: &str) -> String {
    let arg = arg.split_once(':').map_or(arg, |(_, rest)| rest).trim();
    let end = arg.find('>').map_or(arg.len(), |i| i + 1);
    arg[..end]
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_owned()
}

async fn session(stream: TcpStream, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let reply = |text: String| format!("{text}\r\n").into_bytes();
    if write
        .write_all(&reply("220 orderly-testkit ESMTP ready".into()))
        .await
        .is_err()
    {
        return;
    }
    let mut from = None;
    let mut to = Vec::new();
    loop {
        let mut line = Vec::new();
        let read = tokio::select! {
            r = lines.read_until(b'\n', &mut line) => r,
            _ = stop.changed() => return,
        };
        if matches!(read, Ok(0) | Err(_)) {
            return;
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_owned();
        let (verb, arg) = text.split_once(' ').unwrap_or((text.as_str(), ""));
        let answer = match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                "250-orderly-testkit\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 PIPELINING".into()
            }
            "HELO" => "250 orderly-testkit".into(),
            "MAIL" if shared.failing.load(Ordering::SeqCst) => {
                "451 4.3.0 mailbox busy, try again later".into()
            }
            "MAIL" => {
                from = Some(path_of(arg));
                to.clear();
                "250 2.1.0 OK".into()
            }
            "RCPT" if from.is_some() => {
                to.push(path_of(arg));
                "250 2.1.5 OK".into()
            }
            "RCPT" => "503 5.5.1 MAIL first".into(),
            "DATA" if from.is_some() && !to.is_empty() => {
                if write
                    .write_all(b"354 end data with <CR><LF>.<CR><LF>\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
                let mut data = Vec::new();
                loop {
                    let mut line = Vec::new();
                    match lines.read_until(b'\n', &mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if line == b".\r\n" || line == b".\n" {
                        break;
                    }
                    // Dot-unstuffing: a line starting with ".." was a line starting with ".".
                    let line = if line.starts_with(b"..") {
                        &line[1..]
                    } else {
                        &line[..]
                    };
                    data.extend_from_slice(line);
                }
                shared.messages.lock().expect("lock").push(Captured {
                    from: from.take().unwrap_or_default(),
                    to: std::mem::take(&mut to),
                    data,
                });
                "250 2.0.0 queued".into()
            }
            "DATA" => "503 5.5.1 MAIL and RCPT first".into(),
            "RSET" => {
                from = None;
                to.clear();
                "250 2.0.0 OK".into()
            }
            "NOOP" => "250 2.0.0 OK".into(),
            "QUIT" => {
                let _ = write.write_all(b"221 2.0.0 bye\r\n").await;
                return;
            }
            _ => "502 5.5.2 command not implemented".to_owned(),
        };
        if write.write_all(&reply(answer)).await.is_err() {
            return;
        }
    }
}
