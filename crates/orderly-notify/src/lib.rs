//! Orderly's notifications: the message templates and the notifiers that deliver them.
//!
//! # Layout
//! - [`FileTemplates`]: the [`Templates`] port on the files in `templates/` (Jinja syntax,
//!   compiled into the binary, so a Lambda needs no working directory). Every message has a
//!   `{name}.txt` (first line `Subject: …`) and a `{name}.html`; shipped and delivered also a
//!   `{name}.sms.txt`. HTML output escapes every value; text output keeps it byte-exact.
//! - [`smtp`]: [`smtp::SmtpNotifier`], e-mail through an SMTP server (lettre; plain, STARTTLS or
//!   TLS; optional login).
//! - [`sink`]: [`sink::LogNotifier`], the development default: each message to the log, or as
//!   a file in a directory.
//! - [`Routes`]: one notifier per channel (e-mail, SMS, topic), chosen in configuration.
//! - [`message_id`]: the deterministic Message-ID of a message, from its dedupe key.
#![forbid(unsafe_code)]

pub mod sink;
pub mod smtp;

use std::sync::Arc;

use async_trait::async_trait;
use minijinja::Environment;
use orderly_core::notify::{Form, Rendered, Template, Templates, View};
use orderly_core::ports::{Message, Notifier, NotifyError, Recipient};
use sha2::{Digest, Sha256};

/// The template files, by name, compiled in.
const FILES: &[(&str, &str)] = &[
    ("_layout.html", include_str!("../templates/_layout.html")),
    ("_lines.txt", include_str!("../templates/_lines.txt")),
    ("_lines.html", include_str!("../templates/_lines.html")),
    ("_address.txt", include_str!("../templates/_address.txt")),
    ("_address.html", include_str!("../templates/_address.html")),
    (
        "order_confirmation.txt",
        include_str!("../templates/order_confirmation.txt"),
    ),
    (
        "order_confirmation.html",
        include_str!("../templates/order_confirmation.html"),
    ),
    ("new_order.txt", include_str!("../templates/new_order.txt")),
    (
        "new_order.html",
        include_str!("../templates/new_order.html"),
    ),
    (
        "payment_failed.txt",
        include_str!("../templates/payment_failed.txt"),
    ),
    (
        "payment_failed.html",
        include_str!("../templates/payment_failed.html"),
    ),
    ("shipped.txt", include_str!("../templates/shipped.txt")),
    ("shipped.html", include_str!("../templates/shipped.html")),
    (
        "shipped.sms.txt",
        include_str!("../templates/shipped.sms.txt"),
    ),
    ("delivered.txt", include_str!("../templates/delivered.txt")),
    (
        "delivered.html",
        include_str!("../templates/delivered.html"),
    ),
    (
        "delivered.sms.txt",
        include_str!("../templates/delivered.sms.txt"),
    ),
    ("canceled.txt", include_str!("../templates/canceled.txt")),
    ("canceled.html", include_str!("../templates/canceled.html")),
    ("refunded.txt", include_str!("../templates/refunded.txt")),
    ("refunded.html", include_str!("../templates/refunded.html")),
    (
        "needs_attention.txt",
        include_str!("../templates/needs_attention.txt"),
    ),
    (
        "needs_attention.html",
        include_str!("../templates/needs_attention.html"),
    ),
    (
        "review_request.txt",
        include_str!("../templates/review_request.txt"),
    ),
    (
        "review_request.html",
        include_str!("../templates/review_request.html"),
    ),
    (
        "contact_payment.txt",
        include_str!("../templates/contact_payment.txt"),
    ),
    (
        "contact_payment.html",
        include_str!("../templates/contact_payment.html"),
    ),
    (
        "contact_address.txt",
        include_str!("../templates/contact_address.txt"),
    ),
    (
        "contact_address.html",
        include_str!("../templates/contact_address.html"),
    ),
    (
        "contact_delay.txt",
        include_str!("../templates/contact_delay.txt"),
    ),
    (
        "contact_delay.html",
        include_str!("../templates/contact_delay.html"),
    ),
];

/// The templates in `templates/`, ready to render.
pub struct FileTemplates {
    env: Environment<'static>,
}

impl FileTemplates {
    /// Loads and compiles every template.
    ///
    /// # Errors
    /// A template that does not parse (caught by this crate's tests, never in production).
    pub fn load() -> Result<FileTemplates, String> {
        let mut env = Environment::new();
        // Block tags on their own line leave no blank line behind in plain text.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        // An included part ends with its newline, as its file does.
        env.set_keep_trailing_newline(true);
        // `.html` names are escaped for HTML (minijinja's default by file name); `.txt` not.
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (name, source) in FILES {
            env.add_template(name, source)
                .map_err(|e| format!("template {name}: {e}"))?;
        }
        Ok(FileTemplates { env })
    }

    fn render_file(&self, name: &str, view: &View) -> Result<String, String> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(view))
            .map_err(|e| format!("template {name}: {e:#}"))
    }
}

impl Templates for FileTemplates {
    fn render(&self, template: Template, form: Form, view: &View) -> Result<Rendered, String> {
        let name = template.as_str();
        match form {
            Form::Sms => {
                let text = self.render_file(&format!("{name}.sms.txt"), view)?;
                Ok(Rendered {
                    subject: String::new(),
                    text: text.trim_end().to_owned(),
                    html: String::new(),
                })
            }
            Form::Mail => {
                let text = self.render_file(&format!("{name}.txt"), view)?;
                let (first, body) = text.split_once('\n').unwrap_or((text.as_str(), ""));
                let subject = first
                    .strip_prefix("Subject: ")
                    .ok_or_else(|| format!("template {name}.txt must start with \"Subject: \""))?;
                Ok(Rendered {
                    // A subject is one line, whatever a customer's name holds.
                    subject: subject.replace(['\r', '\n'], " ").trim().to_owned(),
                    text: body.trim_start_matches('\n').to_owned(),
                    html: self.render_file(&format!("{name}.html"), view)?,
                })
            }
        }
    }
}

/// The Message-ID of a message: the same for every attempt at one dedupe key, so a receiver
/// that keeps Message-IDs drops a repeat. `domain` is the sender's (the part after `@`).
#[must_use]
pub fn message_id(dedupe_key: &str, domain: &str) -> String {
    let digest = Sha256::digest(dedupe_key.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("<{hex}.notify@{domain}>")
}

/// One notifier per channel; a channel without one is not reached (its messages are not
/// planned at all).
#[derive(Clone, Default)]
pub struct Routes {
    /// For e-mail addresses.
    pub email: Option<Arc<dyn Notifier>>,
    /// For SMS phone numbers.
    pub sms: Option<Arc<dyn Notifier>>,
    /// For topics.
    pub topic: Option<Arc<dyn Notifier>>,
}

impl Routes {
    fn route(&self, recipient: &Recipient) -> Option<&Arc<dyn Notifier>> {
        match recipient {
            Recipient::Email(_) => self.email.as_ref(),
            Recipient::Sms(_) => self.sms.as_ref(),
            Recipient::Topic(_) => self.topic.as_ref(),
        }
    }
}

#[async_trait]
impl Notifier for Routes {
    async fn send(&self, message: &Message) -> Result<(), NotifyError> {
        match self.route(&message.recipient) {
            Some(n) => n.send(message).await,
            None => Err(NotifyError::Permanent(format!(
                "no {} channel is configured",
                message.recipient.channel()
            ))),
        }
    }

    fn reaches(&self, recipient: &Recipient) -> bool {
        self.route(recipient).is_some_and(|n| n.reaches(recipient))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn message_ids_depend_only_on_the_key() {
        let a = message_id("e1/shipped/email:a@example.com", "shop.example");
        assert_eq!(
            a,
            message_id("e1/shipped/email:a@example.com", "shop.example")
        );
        assert_ne!(
            a,
            message_id("e2/shipped/email:a@example.com", "shop.example")
        );
        assert!(a.starts_with('<') && a.ends_with("@shop.example>"));
    }

    fn view() -> View {
        View {
            shop_name: "Orderly Shop".into(),
            order_id: "0193".into(),
            status: "placed".into(),
            event: "OrderPlaced".into(),
            customer_id: "001".into(),
            customer_name: "Zoë <b>山田</b> 👩\u{200d}👩\u{200d}👧".into(),
            customer_email: "zoe@example.com".into(),
            lines: vec![orderly_core::notify::ViewLine {
                name: "Kopfhörer & Co".into(),
                quantity: 2,
                unit_price: "¥1,000".into(),
                line_total: "¥2,000".into(),
            }],
            total: "¥2,000".into(),
            currency: "JPY".into(),
            address: Some(orderly_core::notify::ViewAddress {
                name: "山田 花子".into(),
                line1: "神南1-2-3".into(),
                line2: None,
                city: "渋谷区".into(),
                region: Some("東京都".into()),
                postal_code: Some("150-0041".into()),
                country: "JP".into(),
            }),
            carrier: None,
            tracking_number: None,
            detail: None,
            refunded: None,
        }
    }

    #[test]
    fn the_confirmation_reads_as_written_with_user_text_byte_exact() {
        let t = FileTemplates::load().unwrap();
        let r = t
            .render(Template::OrderConfirmation, Form::Mail, &view())
            .unwrap();
        assert_eq!(r.subject, "Your Orderly Shop order is confirmed");
        assert_eq!(
            r.text,
            "Hello Zoë <b>山田</b> 👩\u{200d}👩\u{200d}👧,\n\n\
             thank you for your order 0193. We have it and are getting it ready.\n\n\
             \x20 2 × Kopfhörer & Co — ¥2,000\n\
             \x20 Total: ¥2,000\n\n\
             Shipping to:\n\
             \x20 山田 花子\n\
             \x20 神南1-2-3\n\
             \x20 150-0041 渋谷区, 東京都\n\
             \x20 JP\n\n\
             We will write again when it ships.\n\n\
             Orderly Shop\n"
        );
        assert!(
            r.html
                .contains("Zoë &lt;b&gt;山田&lt;&#x2f;b&gt; 👩\u{200d}👩\u{200d}👧")
        );
        assert!(r.html.contains("Kopfhörer &amp; Co"));
        assert!(!r.html.contains("<b>"));
    }

    #[test]
    fn an_optional_reason_leaves_no_gap_when_absent() {
        let t = FileTemplates::load().unwrap();
        let mut v = view();
        let without = t.render(Template::Canceled, Form::Mail, &v).unwrap();
        assert!(
            without
                .text
                .contains("was canceled.\n\nIf you were charged"),
            "{}",
            without.text
        );
        v.detail = Some("customer asked".into());
        let with = t.render(Template::Canceled, Form::Mail, &v).unwrap();
        assert!(
            with.text
                .contains("was canceled.\n\nReason: customer asked\n\nIf you were"),
            "{}",
            with.text
        );
    }

    #[test]
    fn every_template_has_its_files() {
        let names: Vec<&str> = FILES.iter().map(|(n, _)| *n).collect();
        for t in Template::ALL {
            for ext in ["txt", "html"] {
                let file = format!("{}.{ext}", t.as_str());
                assert!(names.contains(&file.as_str()), "{file} missing");
            }
            if t.has_sms() {
                let file = format!("{}.sms.txt", t.as_str());
                assert!(names.contains(&file.as_str()), "{file} missing");
            }
        }
        FileTemplates::load().unwrap();
    }
}
