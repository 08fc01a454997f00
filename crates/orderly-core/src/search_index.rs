//! The customer care search's index: the terms each customer is found by (their name and each
//! word of it, their e-mail, their phone — see [`orderly_domain::search`]), kept as documents
//! so every store has it. A customer's terms are written before the customer, in one commit:
//! a term of a customer whose creation then failed points at nobody and is skipped, and no
//! customer is ever missing from the index.

use std::sync::Arc;

use async_trait::async_trait;
use orderly_domain::search::{customer_terms, query_term};
use orderly_domain::{Customer, CustomerId, Product, ProductId};

use crate::ports::{
    CatalogStore, Commit, CommitError, DocKind, Document, DocumentStore, DocumentWrite, Page,
    PageRequest, StoreError, UnitOfWork,
};

/// Between a term and the customer id in a term's key: below every character a term holds.
const SEPARATOR: char = '\u{1f}';

/// Most term documents one search reads.
const MAX_SCANNED: u32 = 500;

/// The search terms, over the document store.
#[derive(Clone)]
pub(crate) struct SearchIndex {
    documents: Arc<dyn DocumentStore>,
    commits: Arc<dyn UnitOfWork>,
}

impl SearchIndex {
    pub(crate) fn new(documents: Arc<dyn DocumentStore>, commits: Arc<dyn UnitOfWork>) -> Self {
        SearchIndex { documents, commits }
    }

    /// Writes `terms` for `customer`, all in one commit; terms already there are kept.
    pub(crate) async fn add(
        &self,
        customer: &CustomerId,
        terms: Vec<String>,
    ) -> Result<(), StoreError> {
        let docs: Vec<Document> = terms
            .iter()
            .map(|t| Document {
                kind: DocKind::SearchTerm,
                key: format!("{t}{SEPARATOR}{customer}"),
                version: 1,
                body: "{}".to_owned(),
            })
            .collect();
        let commit = Commit {
            documents: docs
                .iter()
                .map(|d| DocumentWrite {
                    document: d.clone(),
                    expected_version: None,
                })
                .collect(),
            ..Commit::default()
        };
        match self.commits.commit(commit).await {
            Ok(()) => Ok(()),
            // Some are there already (the same customer indexed before): the rest one by one.
            Err(CommitError::DocumentChanged(..)) => {
                for doc in &docs {
                    match self.documents.put_document(doc, None).await {
                        Ok(()) | Err(StoreError::AlreadyExists) => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            }
            Err(CommitError::Store(e)) => Err(e),
            Err(other) => Err(StoreError::Unavailable(other.to_string())),
        }
    }

    /// The customers one of whose terms starts with what was typed, in term order, at most
    /// `limit`, each once.
    pub(crate) async fn find(
        &self,
        typed: &str,
        limit: usize,
    ) -> Result<Vec<CustomerId>, StoreError> {
        let prefix = query_term(typed);
        let mut found: Vec<CustomerId> = Vec::new();
        if prefix.is_empty() {
            return Ok(found);
        }
        let mut after = prefix.clone();
        let mut scanned = 0;
        while scanned < MAX_SCANNED && found.len() < limit {
            let page = self
                .documents
                .documents(DocKind::SearchTerm, Some(&after), 100)
                .await?;
            let Some(last) = page.last() else { break };
            after.clone_from(&last.key);
            scanned += 100;
            for doc in &page {
                if !doc.key.starts_with(&prefix) {
                    return Ok(found);
                }
                let Some((_, id)) = doc.key.rsplit_once(SEPARATOR) else {
                    continue;
                };
                if let Ok(id) = CustomerId::parse(id)
                    && !found.contains(&id)
                {
                    found.push(id);
                    if found.len() == limit {
                        break;
                    }
                }
            }
        }
        Ok(found)
    }
}

/// The catalog port every use case gets: the store's, with each new customer's search terms
/// written first.
pub(crate) struct IndexedCatalog {
    inner: Arc<dyn CatalogStore>,
    index: SearchIndex,
}

impl IndexedCatalog {
    pub(crate) fn new(inner: Arc<dyn CatalogStore>, index: SearchIndex) -> Self {
        IndexedCatalog { inner, index }
    }
}

#[async_trait]
impl CatalogStore for IndexedCatalog {
    async fn create_product(
        &self,
        product: &Product,
        initial_stock: i64,
    ) -> Result<(), StoreError> {
        self.inner.create_product(product, initial_stock).await
    }
    async fn update_product(
        &self,
        product: &Product,
        expected_version: u32,
    ) -> Result<(), StoreError> {
        self.inner.update_product(product, expected_version).await
    }
    async fn product(&self, id: &ProductId) -> Result<Option<Product>, StoreError> {
        self.inner.product(id).await
    }
    async fn products(&self, ids: &[ProductId]) -> Result<Vec<Product>, StoreError> {
        self.inner.products(ids).await
    }
    async fn list_products(&self, page: &PageRequest) -> Result<Page<Product>, StoreError> {
        self.inner.list_products(page).await
    }
    async fn create_customer(&self, customer: &Customer) -> Result<(), StoreError> {
        let terms = customer_terms(customer.name.as_str(), customer.email.as_str(), None);
        self.index.add(&customer.id, terms).await?;
        self.inner.create_customer(customer).await
    }
    async fn customer(&self, id: &CustomerId) -> Result<Option<Customer>, StoreError> {
        self.inner.customer(id).await
    }
    async fn customers(&self, ids: &[CustomerId]) -> Result<Vec<Customer>, StoreError> {
        self.inner.customers(ids).await
    }
}
