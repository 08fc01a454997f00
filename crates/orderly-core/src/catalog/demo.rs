//! The reference catalog and customers of the design brief, for a first look.

use orderly_domain::{Currency, CustomerId, Email, Money, Name, ProductId};

use super::{Catalog, CreateProduct};
use crate::error::AppError;

impl Catalog {
    /// Loads the reference catalog and customers of the design brief into an empty store.
    /// Returns true if it loaded anything.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn load_demo_data(&self) -> Result<bool, AppError> {
        let mut loaded = false;
        for (id, name, price, stock) in [
            ("001", "Wireless Headphones", "79.99", 150),
            ("002", "Smartwatch", "199.99", 200),
        ] {
            let request = CreateProduct {
                id: ProductId::parse(id)?,
                name: Name::parse("name", name)?,
                prices: vec![
                    Money::parse(price, Currency::USD)
                        .map_err(|e| AppError::Internal(e.to_string()))?,
                ],
                stock,
                active: true,
            };
            match self.create_product(request).await {
                Ok(_) => loaded = true,
                Err(AppError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        for (id, email, name) in [
            ("001", "alice.johnson@example.com", "Alice Johnson"),
            ("002", "michael.brown@example.com", "Michael Brown"),
        ] {
            match self
                .create_customer(
                    CustomerId::parse(id)?,
                    Email::parse(email)?,
                    Name::parse("name", name)?,
                )
                .await
            {
                Ok(_) => loaded = true,
                Err(AppError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(loaded)
    }
}
