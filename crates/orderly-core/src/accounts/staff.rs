//! Staff users: made by an admin, with a role, disabled rather than deleted.

use super::*;

impl Accounts {
    pub(super) async fn staff_doc(&self, email_key: &str) -> Result<StaffDoc, AppError> {
        self.docs
            .staff
            .value(email_key)
            .await?
            .ok_or_else(|| AppError::NotFound {
                what: "user",
                id: email_key.to_owned(),
            })
    }

    /// Makes a staff user.
    ///
    /// # Errors
    /// [`AppError::Invalid`] for bad fields; [`AppError::AlreadyExists`] if the e-mail has a
    /// user.
    pub async fn create_staff(
        &self,
        email: &str,
        name: &str,
        role: Role,
        password: &str,
        created_by: &str,
    ) -> Result<StaffUser, AppError> {
        let mut errors = Vec::new();
        let key = normalise_email("email", email)
            .map_err(|e| errors.push(e))
            .ok();
        if let Err(e) = Name::parse("name", name) {
            errors.push(e);
        }
        if let Err(AppError::Invalid(es)) = check_password(password) {
            errors.extend(es);
        }
        let Some(key) = key.filter(|_| errors.is_empty()) else {
            return Err(AppError::Invalid(errors));
        };
        let doc = StaffDoc {
            email: key.clone(),
            name: name.to_owned(),
            role,
            password_hash: hash_password(password.to_owned()).await?,
            disabled: false,
            created_at: self.now(),
            created_by: created_by.to_owned(),
        };
        match self.docs.staff.insert(&key, &doc).await {
            Err(StoreError::AlreadyExists) => Err(AppError::AlreadyExists {
                what: "user",
                id: key,
            }),
            other => {
                other?;
                Ok(staff_of(&doc))
            }
        }
    }

    /// Every staff user, by e-mail.
    ///
    /// # Errors
    /// [`AppError::Unavailable`] if the store is down.
    pub async fn staff(&self) -> Result<Vec<StaffUser>, AppError> {
        let users = self.docs.staff.all().await?;
        Ok(users.iter().map(|(_, user)| staff_of(user)).collect())
    }

    /// Changes a staff user's role or disables them. Their access tokens keep the old role
    /// until they expire (minutes); refreshing picks up the new one or, if disabled, fails.
    ///
    /// # Errors
    /// [`AppError::NotFound`] for an unknown user.
    pub async fn update_staff(
        &self,
        email: &str,
        role: Option<Role>,
        disabled: Option<bool>,
    ) -> Result<StaffUser, AppError> {
        let key = email.to_lowercase();
        let user = self
            .docs
            .staff
            .update(&key, |user| {
                user.role = role.unwrap_or(user.role);
                user.disabled = disabled.unwrap_or(user.disabled);
                true
            })
            .await?
            .ok_or_else(|| AppError::NotFound {
                what: "user",
                id: key.clone(),
            })?;
        Ok(staff_of(&user))
    }
}

fn staff_of(doc: &StaffDoc) -> StaffUser {
    StaffUser {
        email: doc.email.clone(),
        name: doc.name.clone(),
        role: doc.role,
        disabled: doc.disabled,
        created_at: doc.created_at,
        created_by: doc.created_by.clone(),
    }
}
