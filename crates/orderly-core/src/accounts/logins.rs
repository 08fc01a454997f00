//! Customers' accounts and everyone's log-ins: sign-up, log-in (customers and staff), sessions
//! with rotating refresh tokens, log-out, and the customer's profile.

use super::*;

impl Accounts {
    /// Registers a customer: a customer record, and an account to log in with. Logs them in.
    ///
    /// # Errors
    /// [`AppError::Invalid`] for bad fields; [`AppError::AlreadyExists`] if the e-mail has an
    /// account.
    pub async fn register(
        &self,
        email: &str,
        password: &str,
        name: &str,
        default_currency: Option<Currency>,
        source: &str,
    ) -> Result<(Profile, Tokens), AppError> {
        let mut errors = Vec::new();
        let email_key = normalise_email("email", email)
            .map_err(|e| errors.push(e))
            .ok();
        let parsed_name = Name::parse("name", name).map_err(|e| errors.push(e)).ok();
        if let Err(m) = password::check_new(password) {
            errors.push(ValueError::new("password", m));
        }
        let (Some(email_key), Some(parsed_name)) = (email_key, parsed_name) else {
            return Err(AppError::Invalid(errors));
        };
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        if self.docs.accounts.get(&email_key).await?.is_some() {
            return Err(AppError::AlreadyExists {
                what: "account",
                id: email_key,
            });
        }
        let now = self.now();
        let customer_id = CustomerId::parse(&format!("c-{}", uuid::Uuid::now_v7().simple()))?;
        let customer = Customer {
            id: customer_id.clone(),
            email: Email::parse(email.trim())?,
            name: parsed_name,
            created_at: now,
        };
        let account = AccountDoc {
            customer_id: customer_id.clone(),
            email: email_key.clone(),
            name: name.to_owned(),
            password_hash: hash_password(password.to_owned()).await?,
            addresses: Vec::new(),
            default_currency,
            created_at: now,
        };
        // The customer first: an account must never point at a customer that is not there. A
        // failure in between leaves an unused customer record, which harms nobody.
        self.customers.create_customer(&customer).await?;
        match self.docs.accounts.insert(&email_key, &account).await {
            Err(StoreError::AlreadyExists) => {
                return Err(AppError::AlreadyExists {
                    what: "account",
                    id: email_key,
                });
            }
            other => other?,
        }
        let tokens = self
            .start_session(
                SubjectKind::Customer,
                &email_key,
                customer_id.as_str(),
                None,
                source,
            )
            .await?;
        Ok((profile_of(&account), tokens))
    }

    /// Logs a customer in.
    ///
    /// # Errors
    /// [`AppError::Unauthenticated`] for a wrong e-mail or password (the same answer for
    /// both); [`AppError::RateLimited`] after too many failures for the account or too many
    /// attempts from the address.
    pub async fn login_customer(
        &self,
        email: &str,
        password: &str,
        source: &str,
    ) -> Result<Tokens, AppError> {
        let (key, account) = self
            .check_password(
                &self.docs.accounts,
                ("customer", "login"),
                email,
                password,
                source,
                |a| &a.password_hash,
            )
            .await?;
        self.failures_per_account.clear(&key);
        self.start_session(
            SubjectKind::Customer,
            &key,
            account.customer_id.as_str(),
            None,
            source,
        )
        .await
    }

    /// Logs a staff user in.
    ///
    /// # Errors
    /// As [`Accounts::login_customer`]; a disabled user cannot log in.
    pub async fn login_staff(
        &self,
        email: &str,
        password: &str,
        source: &str,
    ) -> Result<Tokens, AppError> {
        let (key, user) = self.check_staff(email, password, source, "login").await?;
        self.audit(format!("staff:{key}"), "login", None, "ok", source)
            .await;
        self.start_session(SubjectKind::Staff, &key, &key, Some(user.role), source)
            .await
    }

    /// A staff user's e-mail and password checked, for the API's log-in and the panel's
    /// (`action` names which in the audit of a refusal): the normalised e-mail and the user.
    pub(super) async fn check_staff(
        &self,
        email: &str,
        password: &str,
        source: &str,
        action: &str,
    ) -> Result<(String, StaffDoc), AppError> {
        let (key, user) = self
            .check_password(
                &self.docs.staff,
                ("staff", action),
                email,
                password,
                source,
                |u| &u.password_hash,
            )
            .await?;
        if user.disabled {
            self.audit(
                format!("staff:{key}"),
                &format!("{action}.failed"),
                None,
                "user disabled",
                source,
            )
            .await;
            return Err(unauthenticated("this user is disabled; ask an admin"));
        }
        self.failures_per_account.clear(&key);
        Ok((key, user))
    }

    /// Checks an e-mail and password against the stored document of `kind` (customer accounts
    /// or staff users): the rate limits first, then one argon2 verification whether or not the
    /// e-mail is known, so an unknown e-mail and a wrong password take the same time and get
    /// the same answer. The normalised e-mail and the document if the password is right.
    /// `(realm, action)` name a refusal in the audit: `customer:…` or `staff:…`, and
    /// `login.failed` or `panel.login.failed`.
    pub(super) async fn check_password<T: DocumentType>(
        &self,
        docs: &Documents<T>,
        (who, action): (&str, &str),
        email: &str,
        password: &str,
        source: &str,
        hash: impl Fn(&T) -> &str,
    ) -> Result<(String, T), AppError> {
        let key = self.before_login(email, source)?;
        let doc = match &key {
            Some(key) => docs.value(key).await?,
            None => None,
        };
        let ok = verify_password(
            password.to_owned(),
            doc.as_ref().map(|d| hash(d).to_owned()),
        )
        .await;
        let (Some(key), Some(doc), true) = (key, doc, ok) else {
            return Err(self.login_failed(email, source, who, action).await);
        };
        Ok((key, doc))
    }

    /// The rate-limit checks every log-in passes; the normalised e-mail if it is one.
    pub(super) fn before_login(
        &self,
        email: &str,
        source: &str,
    ) -> Result<Option<String>, AppError> {
        let now = self.now().millis();
        let limited = |wait: i64, what: &str| AppError::RateLimited {
            detail: format!(
                "too many log-in attempts {what}; try again in {} s",
                (wait + 999) / 1000
            ),
            retry_after_ms: wait,
        };
        self.attempts_per_address
            .hit(&format!("address:{source}"), now)
            .map_err(|w| limited(w, "from this address"))?;
        let key = normalise_email("email", email).ok();
        if let Some(key) = &key {
            self.failures_per_account
                .check(key, now)
                .map_err(|w| limited(w, "for this account"))?;
        }
        Ok(key)
    }

    pub(super) async fn login_failed(
        &self,
        email: &str,
        source: &str,
        realm: &str,
        action: &str,
    ) -> AppError {
        let key =
            normalise_email("email", email).unwrap_or_else(|_| email.chars().take(200).collect());
        let _ = self.failures_per_account.hit(&key, self.now().millis());
        self.audit(
            format!("{realm}:{key}"),
            &format!("{action}.failed"),
            None,
            WRONG_LOGIN,
            source,
        )
        .await;
        unauthenticated(WRONG_LOGIN)
    }

    pub(super) async fn start_session(
        &self,
        kind: SubjectKind,
        email: &str,
        subject: &str,
        role: Option<Role>,
        source: &str,
    ) -> Result<Tokens, AppError> {
        let now = self.now();
        let session = uuid::Uuid::now_v7().to_string();
        let doc = SessionDoc {
            kind,
            email: email.to_owned(),
            created_at: now,
            expires_at: now.plus_millis(self.settings.refresh_ttl_secs * 1000),
            revoked_at: None,
            source: source.to_owned(),
        };
        self.docs.sessions.insert(&session, &doc).await?;
        self.tokens(kind, email, subject, role, &session, doc.expires_at)
            .await
    }

    pub(super) async fn tokens(
        &self,
        kind: SubjectKind,
        email: &str,
        subject: &str,
        role: Option<Role>,
        session: &str,
        session_expires: Timestamp,
    ) -> Result<Tokens, AppError> {
        let now = self.now();
        let (access, _) = self
            .signer
            .issue(kind, subject, email, role, session, now.millis() / 1000)
            .map_err(|e| AppError::Internal(e.to_string()))?;
        let refresh = token::random_secret(32).map_err(|e| AppError::Internal(e.to_string()))?;
        let doc = RefreshDoc {
            session: session.to_owned(),
            expires_at: session_expires,
            used_at: None,
        };
        self.docs
            .refresh
            .insert(&token::digest(&refresh), &doc)
            .await?;
        Ok(Tokens {
            access_token: access,
            token_type: "Bearer",
            expires_in: self.signer.ttl_secs(),
            refresh_token: refresh,
            refresh_expires_in: ((session_expires.millis() - now.millis()) / 1000).max(0),
        })
    }

    /// Trades a refresh token for new tokens. The old one is spent; presenting it again
    /// revokes the session. A staff user's current role goes into the new token.
    ///
    /// # Errors
    /// [`AppError::Unauthenticated`] if the token is unknown, spent, expired or its session
    /// revoked or its user disabled.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, AppError> {
        let now = self.now();
        let digest = token::digest(refresh_token);
        let Some(Versioned {
            value: mut refresh,
            version,
        }) = self.docs.refresh.get(&digest).await?
        else {
            return Err(unauthenticated(
                "this refresh token is not valid; log in again",
            ));
        };
        let Some(session) = self.docs.sessions.value(&refresh.session).await? else {
            return Err(unauthenticated("this session has ended; log in again"));
        };
        if refresh.used_at.is_some() {
            // Replay of a spent token: someone else holds a copy. End the session for both.
            self.revoke_session(&refresh.session).await?;
            return Err(unauthenticated(
                "this refresh token was already used; the session has been ended, log in again",
            ));
        }
        if session.revoked_at.is_some() || session.expires_at <= now || refresh.expires_at <= now {
            return Err(unauthenticated("this session has ended; log in again"));
        }
        refresh.used_at = Some(now);
        // Spent once: no retry, since a concurrent use of the same token is a replay.
        match self
            .docs
            .refresh
            .save(&digest, &refresh, Some(version))
            .await
        {
            Err(StoreError::Conflict) => {
                return Err(unauthenticated(
                    "this refresh token was used by another request at the same time; log in again",
                ));
            }
            other => other?,
        }
        let (subject, role) = match session.kind {
            SubjectKind::Customer => {
                let account = self.account(&session.email).await?;
                (account.customer_id.to_string(), None)
            }
            SubjectKind::Staff => {
                let user = self.staff_doc(&session.email).await?;
                if user.disabled {
                    return Err(unauthenticated("this user is disabled; ask an admin"));
                }
                (user.email, Some(user.role))
            }
        };
        self.tokens(
            session.kind,
            &session.email,
            &subject,
            role,
            &refresh.session,
            session.expires_at,
        )
        .await
    }

    /// Ends the session a refresh token belongs to: none of its refresh tokens works again.
    /// Access tokens already issued run out on their own (minutes).
    ///
    /// # Errors
    /// [`AppError::Unauthenticated`] if the token is unknown.
    pub async fn logout(&self, refresh_token: &str) -> Result<(), AppError> {
        let Some(refresh) = self
            .docs
            .refresh
            .value(&token::digest(refresh_token))
            .await?
        else {
            return Err(unauthenticated("this refresh token is not valid"));
        };
        self.revoke_session(&refresh.session).await
    }

    pub(super) async fn revoke_session(&self, id: &str) -> Result<(), AppError> {
        let now = self.now();
        self.docs
            .sessions
            .update(id, |session| {
                session.revoked_at.is_none() && {
                    session.revoked_at = Some(now);
                    true
                }
            })
            .await
            .map(|_| ())
    }

    pub(super) async fn account(&self, email_key: &str) -> Result<AccountDoc, AppError> {
        self.docs
            .accounts
            .value(email_key)
            .await?
            .ok_or_else(|| unauthenticated("this account no longer exists"))
    }

    /// The profile of the signed-in customer.
    ///
    /// # Errors
    /// [`AppError::Unauthenticated`] if the account is gone.
    pub async fn profile(&self, email: &str) -> Result<Profile, AppError> {
        Ok(profile_of(&self.account(&email.to_lowercase()).await?))
    }

    /// Changes the signed-in customer's profile.
    ///
    /// # Errors
    /// [`AppError::Invalid`] for bad fields.
    pub async fn update_profile(
        &self,
        email: &str,
        change: ProfileChange,
    ) -> Result<Profile, AppError> {
        let key = email.to_lowercase();
        let mut errors = Vec::new();
        if let Some(name) = &change.name
            && let Err(e) = Name::parse("name", name)
        {
            errors.push(e);
        }
        if let Some(addresses) = &change.addresses {
            if addresses.len() > MAX_ADDRESSES {
                errors.push(ValueError::new(
                    "addresses",
                    format!("at most {MAX_ADDRESSES} addresses"),
                ));
            }
            for (i, a) in addresses.iter().enumerate() {
                if let Err(es) = a.validate() {
                    errors.extend(es.into_iter().map(|e| {
                        ValueError::new(&format!("addresses[{i}].{}", e.field), e.message)
                    }));
                }
            }
        }
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        let account = self
            .docs
            .accounts
            .update(&key, |account| {
                if let Some(name) = &change.name {
                    account.name.clone_from(name);
                }
                if let Some(addresses) = &change.addresses {
                    account.addresses.clone_from(addresses);
                }
                if let Some(currency) = change.default_currency {
                    account.default_currency = currency;
                }
                true
            })
            .await?
            .ok_or_else(|| unauthenticated("this account no longer exists"))?;
        Ok(profile_of(&account))
    }
}

fn profile_of(account: &AccountDoc) -> Profile {
    Profile {
        customer_id: account.customer_id.clone(),
        email: account.email.clone(),
        name: account.name.clone(),
        addresses: account.addresses.clone(),
        default_currency: account.default_currency,
    }
}
