//! The catalog: products and their prices, customers, stock levels and their manual
//! adjustments, and exchange rates from the base currency.
//!
//! # Layout
//! - this module: [`Catalog`], the use cases on products, customers and stock;
//! - [`pricing`]: [`Pricing`], a product's price in a currency (listed, or converted with the
//!   rate staff set), shared with orders and carts; the rates themselves;
//! - `demo`: the reference catalog loaded into an empty store.

mod demo;
pub mod pricing;

use std::sync::Arc;

use orderly_domain::text::check_text;
use orderly_domain::{
    Actor, Customer, CustomerId, Email, Money, Name, Prices, Product, ProductId, StockAdjustment,
    StockLevel, ValueError,
};

pub use self::pricing::{Priced, Pricing};
use crate::commits::{CONFLICT_RETRIES, Changes, MAX_REASON};
use crate::error::{AppError, not_found};
use crate::ports::{CatalogStore, Commit, Page, PageRequest, StockMove, StockStore, StoreError};

/// Largest stock count or adjustment, to keep sums far from overflow.
pub const MAX_STOCK: i64 = 1_000_000_000;

/// A new product.
#[derive(Clone, Debug)]
pub struct CreateProduct {
    /// Merchant id.
    pub id: ProductId,
    /// Name.
    pub name: Name,
    /// Prices.
    pub prices: Vec<Money>,
    /// Units on hand.
    pub stock: i64,
    /// On sale.
    pub active: bool,
}

/// Changes to a product; absent fields stay as they are.
#[derive(Clone, Debug, Default)]
pub struct UpdateProduct {
    /// New name.
    pub name: Option<Name>,
    /// New price list (replaces the old one).
    pub prices: Option<Vec<Money>>,
    /// On sale or not.
    pub active: Option<bool>,
}

/// Products, customers, stock and exchange rates.
#[derive(Clone)]
pub struct Catalog {
    catalog: Arc<dyn CatalogStore>,
    stock: Arc<dyn StockStore>,
    changes: Changes,
    pricing: Pricing,
}

impl Catalog {
    /// The catalog over its ports (see [`crate::Application`]).
    pub(crate) fn new(
        catalog: Arc<dyn CatalogStore>,
        stock: Arc<dyn StockStore>,
        changes: Changes,
        pricing: Pricing,
    ) -> Self {
        Catalog {
            catalog,
            stock,
            changes,
            pricing,
        }
    }

    /// How prices are found in a currency.
    #[must_use]
    pub fn pricing(&self) -> &Pricing {
        &self.pricing
    }

    /// Creates a product with its opening stock.
    ///
    /// # Errors
    /// [`AppError::Invalid`], [`AppError::AlreadyExists`], storage.
    pub async fn create_product(&self, request: CreateProduct) -> Result<Product, AppError> {
        let prices = Prices::new(request.prices)?;
        if !(0..=MAX_STOCK).contains(&request.stock) {
            return Err(AppError::invalid(
                "stock",
                format!("must be between 0 and {MAX_STOCK}"),
            ));
        }
        let now = self.changes.now();
        let product = Product {
            id: request.id,
            name: request.name,
            prices,
            active: request.active,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        match self.catalog.create_product(&product, request.stock).await {
            Ok(()) => Ok(product),
            Err(StoreError::AlreadyExists) => Err(AppError::AlreadyExists {
                what: "product",
                id: product.id.to_string(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Changes a product's name, prices or status. Orders already placed keep their prices.
    ///
    /// # Errors
    /// [`AppError::Invalid`], [`AppError::NotFound`], storage.
    pub async fn update_product(
        &self,
        id: &ProductId,
        update: UpdateProduct,
    ) -> Result<Product, AppError> {
        let prices = update.prices.map(Prices::new).transpose()?;
        for _ in 0..CONFLICT_RETRIES {
            let mut product = self.product(id).await?;
            let expected_version = product.version;
            if let Some(name) = &update.name {
                product.name = name.clone();
            }
            if let Some(prices) = &prices {
                product.prices = prices.clone();
            }
            if let Some(active) = update.active {
                product.active = active;
            }
            product.version += 1;
            product.updated_at = self.changes.now();
            match self
                .catalog
                .update_product(&product, expected_version)
                .await
            {
                Ok(()) => return Ok(product),
                Err(StoreError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppError::Unavailable(format!(
            "product {id} is changing too often; try again"
        )))
    }

    /// One product.
    ///
    /// # Errors
    /// [`AppError::NotFound`], storage.
    pub async fn product(&self, id: &ProductId) -> Result<Product, AppError> {
        self.catalog
            .product(id)
            .await?
            .ok_or_else(|| not_found("product", id))
    }

    /// Several products in one read, for batched lookups; missing ids are left out.
    ///
    /// # Errors
    /// Storage.
    pub async fn products(&self, ids: &[ProductId]) -> Result<Vec<Product>, AppError> {
        Ok(self.catalog.products(ids).await?)
    }

    /// Products by id.
    ///
    /// # Errors
    /// [`AppError::InvalidCursor`], storage.
    pub async fn list_products(&self, page: &PageRequest) -> Result<Page<Product>, AppError> {
        Ok(self.catalog.list_products(page).await?)
    }

    /// Creates a customer.
    ///
    /// # Errors
    /// [`AppError::AlreadyExists`], storage.
    pub async fn create_customer(
        &self,
        id: CustomerId,
        email: Email,
        name: Name,
    ) -> Result<Customer, AppError> {
        let customer = Customer {
            id,
            email,
            name,
            created_at: self.changes.now(),
        };
        match self.catalog.create_customer(&customer).await {
            Ok(()) => Ok(customer),
            Err(StoreError::AlreadyExists) => Err(AppError::AlreadyExists {
                what: "customer",
                id: customer.id.to_string(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// One customer.
    ///
    /// # Errors
    /// [`AppError::NotFound`], storage.
    pub async fn customer(&self, id: &CustomerId) -> Result<Customer, AppError> {
        self.catalog
            .customer(id)
            .await?
            .ok_or_else(|| not_found("customer", id))
    }

    /// Several customers in one read, for batched lookups; missing ids are left out.
    ///
    /// # Errors
    /// Storage.
    pub async fn customers(&self, ids: &[CustomerId]) -> Result<Vec<Customer>, AppError> {
        Ok(self.catalog.customers(ids).await?)
    }

    /// A product's stock.
    ///
    /// # Errors
    /// [`AppError::NotFound`], storage.
    pub async fn stock(&self, id: &ProductId) -> Result<StockLevel, AppError> {
        self.stock
            .stock(id)
            .await?
            .ok_or_else(|| not_found("product", id))
    }

    /// A product's recent manual adjustments, newest first.
    ///
    /// # Errors
    /// [`AppError::NotFound`], storage.
    pub async fn adjustments(
        &self,
        id: &ProductId,
        limit: u32,
    ) -> Result<Vec<StockAdjustment>, AppError> {
        self.stock(id).await?;
        Ok(self.stock.adjustments(id, limit).await?)
    }

    /// Adds or removes available units, recording why and who.
    ///
    /// # Errors
    /// [`AppError::Invalid`] for a zero or huge delta or an empty reason,
    /// [`AppError::InsufficientStock`] if available would go below zero, [`AppError::NotFound`].
    pub async fn adjust_stock(
        &self,
        id: &ProductId,
        delta: i64,
        reason: String,
        actor: Actor,
    ) -> Result<StockLevel, AppError> {
        let mut errors = Vec::new();
        if delta == 0 || !(-MAX_STOCK..=MAX_STOCK).contains(&delta) {
            errors.push(ValueError::new(
                "delta",
                format!("must be non-zero and between -{MAX_STOCK} and {MAX_STOCK}"),
            ));
        }
        if let Err(e) = check_text("reason", &reason, MAX_REASON) {
            errors.push(e);
        }
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        let adjustment = StockAdjustment {
            product_id: id.clone(),
            delta,
            reason,
            actor: actor.as_str().to_owned(),
            at: self.changes.now(),
        };
        let commit = Commit {
            stock: vec![StockMove {
                product_id: id.clone(),
                available: delta,
                reserved: 0,
            }],
            adjustment: Some(adjustment),
            ..Commit::default()
        };
        self.changes.commit(commit).await?;
        self.stock(id).await
    }

    /// Every rate from the base currency, by currency code.
    ///
    /// # Errors
    /// Storage.
    pub async fn rates(&self) -> Result<Vec<orderly_domain::ExchangeRate>, AppError> {
        self.pricing.rates().await
    }

    /// Sets the rate from the base currency to `to`. Orders placed before keep the rate they
    /// were priced with.
    ///
    /// # Errors
    /// [`AppError::Invalid`] for the base currency itself, storage.
    pub async fn set_rate(
        &self,
        to: orderly_domain::Currency,
        rate: orderly_domain::Rate,
    ) -> Result<orderly_domain::ExchangeRate, AppError> {
        self.pricing.set_rate(to, rate, self.changes.now()).await
    }
}
