//! E-mail through an SMTP server, with lettre: plain (a local relay), STARTTLS (port 587) or
//! implicit TLS (port 465), optional login; rustls on aws-lc, the web PKI's roots.
//!
//! Each message is `multipart/alternative` (plain text, then HTML) with a Message-ID made from
//! its dedupe key. SMTP's own reply classes decide retrying: a 4xx reply or a lost connection
//! is transient, a 5xx reply permanent.

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use orderly_core::ports::{Message, Notifier, NotifyError, Recipient};
use orderly_core::secret::Secret;

use crate::message_id;

/// How the connection is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// None: only for a relay on the same machine or a test listener.
    None,
    /// Plain connection upgraded with STARTTLS, which is required (port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
}

impl TlsMode {
    /// Parses `none`, `starttls` or `tls`.
    ///
    /// # Errors
    /// A message naming the accepted values.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "none" => Ok(TlsMode::None),
            "starttls" => Ok(TlsMode::StartTls),
            "tls" => Ok(TlsMode::Tls),
            other => Err(format!(
                "SMTP TLS mode must be none, starttls or tls, got {other:?}"
            )),
        }
    }

    /// The usual port of the mode.
    #[must_use]
    pub fn default_port(self) -> u16 {
        match self {
            TlsMode::None => 25,
            TlsMode::StartTls => 587,
            TlsMode::Tls => 465,
        }
    }
}

/// Where and how to send.
#[derive(Clone, Debug)]
pub struct SmtpSettings {
    /// The server's host name (also the name its certificate must carry).
    pub host: String,
    /// Its port.
    pub port: u16,
    /// Connection protection.
    pub tls: TlsMode,
    /// Login name, if the server wants one.
    pub username: Option<String>,
    /// Login password (masked in every log).
    pub password: Option<Secret>,
    /// The sender, e.g. `Shop <orders@shop.example>`.
    pub from: String,
    /// Longest wait for the server per command.
    pub timeout: Duration,
}

impl SmtpSettings {
    /// Checks the sender is a mailbox and TLS can be set up for the host, without connecting
    /// (and without a runtime: configuration is checked before one runs).
    ///
    /// # Errors
    /// A message naming the bad setting.
    pub fn validate(&self) -> Result<(), String> {
        self.from
            .parse::<Mailbox>()
            .map_err(|e| format!("SMTP sender {:?} is not a mailbox: {e}", self.from))?;
        if self.tls != TlsMode::None {
            TlsParameters::new(self.host.clone())
                .map_err(|e| format!("SMTP TLS for {}: {e}", self.host))?;
        }
        if self.host.trim().is_empty() {
            return Err("SMTP host is empty".into());
        }
        Ok(())
    }
}

/// Sends e-mail through one SMTP server, keeping a small pool of connections.
#[derive(Clone)]
pub struct SmtpNotifier {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    domain: String,
}

impl std::fmt::Debug for SmtpNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpNotifier")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl SmtpNotifier {
    /// Builds the transport; no connection is made until the first message.
    ///
    /// # Errors
    /// A sender that is not a mailbox, or TLS that cannot be set up for the host.
    ///
    /// # Panics
    /// Outside a tokio runtime (the connection pool starts a task).
    pub fn new(settings: &SmtpSettings) -> Result<Self, String> {
        settings.validate()?;
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|e| format!("SMTP sender {:?} is not a mailbox: {e}", settings.from))?;
        let domain = from.email.domain().to_owned();
        let tls = |host: &str| {
            TlsParameters::new(host.to_owned()).map_err(|e| format!("SMTP TLS for {host}: {e}"))
        };
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.host.clone())
                .port(settings.port)
                .timeout(Some(settings.timeout));
        builder = match settings.tls {
            TlsMode::None => builder.tls(Tls::None),
            TlsMode::StartTls => builder.tls(Tls::Required(tls(&settings.host)?)),
            TlsMode::Tls => builder.tls(Tls::Wrapper(tls(&settings.host)?)),
        };
        if let Some(user) = &settings.username {
            let password = settings
                .password
                .as_ref()
                .map(|p| p.expose().to_owned())
                .unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(SmtpNotifier {
            transport: builder.build(),
            from,
            domain,
        })
    }

    /// The e-mail for `message`.
    ///
    /// # Errors
    /// [`NotifyError::Permanent`] for an address that is not one.
    pub fn email(&self, message: &Message) -> Result<lettre::Message, NotifyError> {
        let to: Mailbox = message
            .recipient
            .address()
            .parse()
            .map_err(|e| NotifyError::Permanent(format!("not an e-mail address: {e}")))?;
        lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(message.subject.clone())
            .message_id(Some(message_id(&message.dedupe_key, &self.domain)))
            .multipart(MultiPart::alternative_plain_html(
                message.text.clone(),
                message.html.clone(),
            ))
            .map_err(|e| NotifyError::Permanent(format!("cannot build the e-mail: {e}")))
    }
}

#[async_trait]
impl Notifier for SmtpNotifier {
    async fn send(&self, message: &Message) -> Result<(), NotifyError> {
        let email = self.email(message)?;
        match self.transport.send(email).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(NotifyError::Permanent(format!("SMTP: {e}"))),
            // 4xx replies, timeouts, refused or dropped connections: try again later.
            Err(e) => Err(NotifyError::Transient(format!("SMTP: {e}"))),
        }
    }

    fn reaches(&self, recipient: &Recipient) -> bool {
        matches!(recipient, Recipient::Email(_))
    }
}
