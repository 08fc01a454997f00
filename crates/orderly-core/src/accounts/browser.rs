//! Browser sessions of the staff panel: a staff log-in that lives in an HttpOnly cookie instead
//! of bearer tokens. The cookie holds a random secret; the store keeps only its SHA-256, as the
//! session's id, so a leaked database holds no working session. Each page reads the session
//! and the staff user again: a disabled user or a changed role takes effect on the next click.

use orderly_auth::Principal;
use orderly_auth::token::{self, SubjectKind};

use super::{Accounts, SessionDoc, unauthenticated};
use crate::error::AppError;

/// How long a panel session lasts from sign-in, milliseconds: a working day.
pub const BROWSER_SESSION_MS: i64 = 12 * 3600 * 1000;

/// A signed-in browser: the secret for the cookie, and what the forms carry against CSRF.
#[derive(Clone, Debug)]
pub struct BrowserSession {
    /// The cookie's value.
    pub secret: String,
    /// The token every form of this session carries (derived from the secret, so it needs no
    /// storage and cannot be guessed without the cookie).
    pub csrf: String,
    /// The staff member.
    pub principal: Principal,
}

impl Accounts {
    /// Signs a staff user in to the panel, with the same rate limits, password check and audit
    /// as `POST /v1/auth/staff/login`.
    ///
    /// # Errors
    /// As [`Accounts::login_staff`].
    pub async fn open_browser_session(
        &self,
        email: &str,
        password: &str,
        source: &str,
    ) -> Result<BrowserSession, AppError> {
        let (key, user) = self
            .check_staff(email, password, source, "panel.login")
            .await?;
        let secret = token::random_secret(32).map_err(|e| AppError::Internal(e.to_string()))?;
        let now = self.now();
        let doc = SessionDoc {
            kind: SubjectKind::Staff,
            email: key.clone(),
            created_at: now,
            expires_at: now.plus_millis(BROWSER_SESSION_MS),
            revoked_at: None,
            source: source.to_owned(),
        };
        self.docs
            .sessions
            .insert(&token::digest(&secret), &doc)
            .await?;
        self.audit(format!("staff:{key}"), "panel.login", None, "ok", source)
            .await;
        Ok(BrowserSession {
            csrf: csrf_token(&secret),
            principal: Principal::Staff {
                user_id: key.clone(),
                email: key,
                role: user.role,
            },
            secret,
        })
    }

    /// The staff member a panel cookie belongs to, with their current role.
    ///
    /// # Errors
    /// [`AppError::Unauthenticated`] for an unknown, ended or expired session, or a disabled
    /// user.
    pub async fn browser_session(&self, secret: &str) -> Result<BrowserSession, AppError> {
        let ended = || unauthenticated("your session has ended; sign in again");
        let Some(session) = self.docs.sessions.value(&token::digest(secret)).await? else {
            return Err(ended());
        };
        if session.kind != SubjectKind::Staff
            || session.revoked_at.is_some()
            || session.expires_at <= self.now()
        {
            return Err(ended());
        }
        let user = self.staff_doc(&session.email).await.map_err(|_| ended())?;
        if user.disabled {
            return Err(unauthenticated("this user is disabled; ask an admin"));
        }
        Ok(BrowserSession {
            secret: secret.to_owned(),
            csrf: csrf_token(secret),
            principal: Principal::Staff {
                user_id: user.email.clone(),
                email: user.email,
                role: user.role,
            },
        })
    }

    /// Ends a panel session: its cookie works no more, on any node.
    ///
    /// # Errors
    /// Storage.
    pub async fn close_browser_session(&self, secret: &str, source: &str) -> Result<(), AppError> {
        let id = token::digest(secret);
        if let Some(session) = self.docs.sessions.value(&id).await? {
            self.revoke_session(&id).await?;
            self.audit(
                format!("staff:{}", session.email),
                "panel.logout",
                None,
                "ok",
                source,
            )
            .await;
        }
        Ok(())
    }
}

/// The CSRF token of the session whose cookie holds `secret`.
#[must_use]
pub fn csrf_token(secret: &str) -> String {
    token::digest(&format!("orderly-panel-csrf:{secret}"))
}
