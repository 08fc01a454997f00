//! A product's price in a currency: the one the catalog lists, or its base-currency price
//! converted with the exchange rate staff set; and those rates.

use std::sync::Arc;

use orderly_domain::{Currency, ExchangeRate, Money, Product, Rate, Timestamp, ValueError};

use crate::documents::{DocumentType, Documents};
use crate::error::AppError;
use crate::ports::{DocKind, DocumentStore};

impl DocumentType for ExchangeRate {
    const KIND: DocKind = DocKind::Rate;
}

/// A product's price in a currency, and whether it was converted.
pub enum Priced {
    /// The catalog lists it in that currency.
    Listed(Money),
    /// Converted from the base currency with this rate.
    Converted(Money, ExchangeRate),
}

/// Prices in any currency the shop sells in, from the base currency and the rates.
#[derive(Clone)]
pub struct Pricing {
    rates: Documents<ExchangeRate>,
    base: Currency,
}

impl Pricing {
    /// Prices with `base` as the base currency and the rates kept in `documents`.
    pub(crate) fn new(documents: Arc<dyn DocumentStore>, base: Currency) -> Self {
        Pricing {
            rates: Documents::new(documents),
            base,
        }
    }

    /// The base currency.
    #[must_use]
    pub fn base(&self) -> Currency {
        self.base
    }

    /// A product's price in `currency`: its listed one, or its base-currency price converted
    /// with `rate` (the base → `currency` rate staff set, if any).
    pub fn price_of(
        &self,
        product: &Product,
        currency: Currency,
        rate: Option<&ExchangeRate>,
    ) -> Result<Priced, ValueError> {
        if let Some(price) = product.price_in(currency) {
            return Ok(Priced::Listed(price));
        }
        let base = self.base;
        if let (Some(base_price), Some(rate)) = (product.price_in(base), rate) {
            return rate
                .convert(base_price)
                .map(|p| Priced::Converted(p, *rate))
                .map_err(|e| ValueError::new("currency", e.to_string()));
        }
        let known: Vec<_> = product
            .prices
            .as_slice()
            .iter()
            .map(|p| p.currency().code())
            .collect();
        let hint = if product.price_in(base).is_some() {
            format!("; set a rate from {base} with PUT /v1/rates/{currency} to sell it converted")
        } else {
            String::new()
        };
        Err(ValueError::new(
            "currency",
            format!(
                "product {} has no price in {currency}; it is priced in {}{hint}",
                product.id,
                known.join(", ")
            ),
        ))
    }

    /// The rate staff set from the base currency to `currency` (none for the base itself).
    pub async fn rate_to(&self, currency: Currency) -> Result<Option<ExchangeRate>, AppError> {
        if currency == self.base {
            return Ok(None);
        }
        let rate = self.rates.value(currency.code()).await?;
        Ok(rate.filter(|r| r.from == self.base))
    }

    /// Every rate from the base currency, by currency code.
    ///
    /// # Errors
    /// Storage.
    pub async fn rates(&self) -> Result<Vec<ExchangeRate>, AppError> {
        Ok(self
            .rates
            .all()
            .await?
            .into_iter()
            .map(|(_, rate)| rate)
            .filter(|rate| rate.from == self.base)
            .collect())
    }

    /// Sets the rate from the base currency to `to`, as of `now`.
    ///
    /// # Errors
    /// [`AppError::Invalid`] for the base currency itself, storage.
    pub(crate) async fn set_rate(
        &self,
        to: Currency,
        rate: Rate,
        now: Timestamp,
    ) -> Result<ExchangeRate, AppError> {
        let base = self.base;
        if to == base {
            return Err(AppError::invalid(
                "currency",
                format!("{to} is the base currency; its prices are the catalog's own"),
            ));
        }
        let new = ExchangeRate {
            from: base,
            to,
            rate,
            set_at: now,
        };
        self.rates.put(to.code(), &new).await?;
        tracing::info!(from = %base, %to, %rate, "exchange rate set");
        Ok(new)
    }
}
