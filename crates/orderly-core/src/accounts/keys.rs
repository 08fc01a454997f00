//! API keys: made with scopes, shown once, revoked at once.

use super::*;

impl Accounts {
    /// Makes an API key; the answer holds the key itself, which is not kept and never shown
    /// again.
    ///
    /// # Errors
    /// [`AppError::Invalid`] for an empty name, no scopes or a scope keys may not hold.
    pub async fn create_key(
        &self,
        name: &str,
        scopes: &[Permission],
        created_by: &str,
    ) -> Result<(ApiKey, String), AppError> {
        let mut errors = Vec::new();
        if name.trim().is_empty() || name.chars().count() > MAX_KEY_NAME {
            errors.push(ValueError::new(
                "name",
                format!("must be 1 to {MAX_KEY_NAME} characters"),
            ));
        }
        if scopes.is_empty() {
            errors.push(ValueError::new("scopes", "name at least one scope"));
        }
        for s in scopes {
            if !s.grantable_to_keys() {
                errors.push(ValueError::new(
                    "scopes",
                    format!("{s} stays with people; API keys cannot hold it"),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        let mut scopes = scopes.to_vec();
        scopes.sort();
        scopes.dedup();
        let (id, key) = token::new_api_key().map_err(|e| AppError::Internal(e.to_string()))?;
        let doc = ApiKeyDoc {
            key: ApiKey {
                id: id.clone(),
                name: name.trim().to_owned(),
                scopes,
                created_at: self.now(),
                created_by: created_by.to_owned(),
                revoked_at: None,
            },
            digest: token::digest(&key),
        };
        self.docs.keys.insert(&id, &doc).await?;
        Ok((doc.key, key))
    }

    /// Every API key, revoked ones included.
    ///
    /// # Errors
    /// [`AppError::Unavailable`] if the store is down.
    pub async fn keys(&self) -> Result<Vec<ApiKey>, AppError> {
        let keys = self.docs.keys.all().await?;
        Ok(keys.into_iter().map(|(_, doc)| doc.key).collect())
    }

    /// Revokes a key; it stops working at once here and within the key cache time elsewhere.
    ///
    /// # Errors
    /// [`AppError::NotFound`] for an unknown key.
    pub async fn revoke_key(&self, id: &str) -> Result<ApiKey, AppError> {
        let now = self.now();
        let doc = self
            .docs
            .keys
            .update(id, |doc| {
                doc.key.revoked_at.is_none() && {
                    doc.key.revoked_at = Some(now);
                    true
                }
            })
            .await?
            .ok_or_else(|| AppError::NotFound {
                what: "API key",
                id: id.to_owned(),
            })?;
        self.keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        Ok(doc.key)
    }
}
