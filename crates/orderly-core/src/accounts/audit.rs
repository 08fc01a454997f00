//! The audit log: who did what to which, from where, and how it went.

use super::*;

impl Accounts {
    /// Records an entry; a failure to record is logged, never lost silently, and never fails
    /// the action (which has already happened).
    pub async fn audit(
        &self,
        actor: String,
        action: &str,
        target: Option<&str>,
        outcome: &str,
        source: &str,
    ) {
        let entry = AuditEntry {
            id: uuid::Uuid::now_v7().to_string(),
            at: self.now(),
            actor,
            action: action.to_owned(),
            target: target.map(ToOwned::to_owned),
            outcome: outcome.to_owned(),
            source: source.to_owned(),
        };
        if let Err(e) = self.docs.audit.insert(&entry.id, &entry).await {
            tracing::error!(error = %e, actor = %entry.actor, action = %entry.action, target = ?entry.target, outcome = %entry.outcome, source = %entry.source, "could not record an audit entry");
        }
    }

    /// Audit entries oldest first, after `after`, at most `limit`.
    ///
    /// # Errors
    /// [`AppError::Unavailable`] if the store is down.
    pub async fn audit_log(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, AppError> {
        let entries = self
            .docs
            .audit
            .page(
                after,
                limit.clamp(*AUDIT_PAGE_LIMITS.start(), *AUDIT_PAGE_LIMITS.end()),
            )
            .await?;
        Ok(entries.into_iter().map(|(_, entry)| entry).collect())
    }
}
