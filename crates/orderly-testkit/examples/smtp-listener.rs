//! A local SMTP listener that prints every message it receives: somewhere for `orderly serve
//! --notifier smtp` to deliver to on a laptop (see the README, "Notifications").
//!
//! ```text
//! cargo run -p orderly-testkit --example smtp-listener -- 127.0.0.1:2525
//! ```
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use orderly_testkit::smtp::SmtpServer;

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:2525".to_owned())
        .parse()
        .expect("an address such as 127.0.0.1:2525");
    let server = SmtpServer::start_on(addr).await;
    println!("SMTP listener on {}", server.addr());
    let mut shown = 0;
    loop {
        let messages = server.messages();
        for m in &messages[shown..] {
            let p = m.parsed();
            println!("--- message {} ---", shown + 1);
            println!("envelope: {} -> {}", m.from, m.to.join(", "));
            println!("Subject: {}", p.subject);
            println!("Message-ID: <{}>", p.message_id);
            println!("Content-Type: {}", p.content_type);
            println!("{}", p.text.trim_end());
            println!("[html part: {} bytes]", p.html.len());
            shown += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
