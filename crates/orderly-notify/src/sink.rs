//! The development notifier: messages go to the log, or one file each into a directory, so a
//! developer sees what customers would get without any mail server.

use std::path::PathBuf;

use async_trait::async_trait;
use orderly_core::ports::{Message, Notifier, NotifyError, Recipient};

/// Writes each message to the log, or to `{dir}/{dedupe key}.txt`.
#[derive(Clone, Debug, Default)]
pub struct LogNotifier {
    /// Where message files go; `None`: the log only.
    dir: Option<PathBuf>,
}

impl LogNotifier {
    /// Messages to the log.
    #[must_use]
    pub fn log() -> Self {
        LogNotifier { dir: None }
    }

    /// Messages as files in `dir` (made if missing).
    #[must_use]
    pub fn dir(dir: impl Into<PathBuf>) -> Self {
        LogNotifier {
            dir: Some(dir.into()),
        }
    }

    /// The file a message is written to: its dedupe key made safe for a file name.
    #[must_use]
    pub fn file_name(message: &Message) -> String {
        let safe: String = message
            .dedupe_key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("{safe}.txt")
    }
}

#[async_trait]
impl Notifier for LogNotifier {
    async fn send(&self, message: &Message) -> Result<(), NotifyError> {
        let Some(dir) = &self.dir else {
            // Addresses are personal data: the log gets the channel and the subject only.
            tracing::info!(
                key = %message.dedupe_key.split('/').take(2).collect::<Vec<_>>().join("/"),
                channel = message.recipient.channel(),
                subject = %message.subject,
                "notification (log sink)"
            );
            return Ok(());
        };
        let text = format!(
            "To: {} {}\nSubject: {}\nCategory: {:?}\n\n{}\n\n--- html ---\n{}\n",
            message.recipient.channel(),
            message.recipient.address(),
            message.subject,
            message.category,
            message.text,
            message.html
        );
        let path = dir.join(Self::file_name(message));
        let write = async {
            tokio::fs::create_dir_all(dir).await?;
            tokio::fs::write(&path, text).await
        };
        write
            .await
            .map_err(|e| NotifyError::Transient(format!("writing {}: {e}", path.display())))
    }

    fn reaches(&self, _recipient: &Recipient) -> bool {
        true
    }
}
