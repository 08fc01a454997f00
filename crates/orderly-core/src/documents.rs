//! The one way to documents: a typed repository over the [`DocumentStore`] port.
//!
//! Each kind of document is a Rust type that names its [`DocKind`] ([`DocumentType`]); a
//! [`Documents`] of that type reads it, inserts it, and changes it with optimistic concurrency
//! (read, change, write over the version read, start over if another writer got there first)
//! — the loop is written here once. [`Documents::write`] gives the same write as data for a
//! [`crate::ports::Commit`], so a document can commit together with the order it belongs to.

use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::commits::CONFLICT_RETRIES;
use crate::error::AppError;
use crate::ports::{DocKind, Document, DocumentStore, DocumentWrite, StoreError};

/// A kind of document: a type kept whole as JSON under one [`DocKind`].
pub trait DocumentType: Serialize + DeserializeOwned + Send + Sync {
    /// The kind it is stored as.
    const KIND: DocKind;

    /// Tells a document read back, or about to be written, its version: for types that carry
    /// it themselves (a cart).
    fn set_version(&mut self, _version: u32) {}
}

/// A document read back with the version it was stored at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned<T> {
    /// The document.
    pub value: T,
    /// Its version: 1 when new, +1 on every write.
    pub version: u32,
}

/// What a change made of the document it read.
#[derive(Debug)]
pub enum Change<T, R> {
    /// Store this, and answer `R`.
    Write(T, R),
    /// Store nothing, and answer `R`.
    Keep(R),
}

/// Documents of type `T`.
pub struct Documents<T> {
    store: Arc<dyn DocumentStore>,
    kind: PhantomData<fn() -> T>,
}

impl<T> Clone for Documents<T> {
    fn clone(&self) -> Self {
        Documents {
            store: Arc::clone(&self.store),
            kind: PhantomData,
        }
    }
}

impl<T: DocumentType> Documents<T> {
    /// Documents of type `T` in `store`.
    #[must_use]
    pub fn new(store: Arc<dyn DocumentStore>) -> Self {
        Documents {
            store,
            kind: PhantomData,
        }
    }

    /// The document under `key`, with its version.
    ///
    /// # Errors
    /// A storage failure; [`StoreError::Corrupt`] if the stored text is not a `T`.
    pub async fn get(&self, key: &str) -> Result<Option<Versioned<T>>, StoreError> {
        let Some(doc) = self.store.document(T::KIND, key).await? else {
            return Ok(None);
        };
        let mut value: T = decode(&doc)?;
        value.set_version(doc.version);
        Ok(Some(Versioned {
            value,
            version: doc.version,
        }))
    }

    /// The version of the document under `key`, without reading it as a `T` (so a document
    /// that no longer reads can still be written over).
    ///
    /// # Errors
    /// A storage failure.
    pub async fn version(&self, key: &str) -> Result<Option<u32>, StoreError> {
        Ok(self
            .store
            .document(T::KIND, key)
            .await?
            .map(|doc| doc.version))
    }

    /// The document under `key`.
    ///
    /// # Errors
    /// As [`Documents::get`].
    pub async fn value(&self, key: &str) -> Result<Option<T>, StoreError> {
        Ok(self.get(key).await?.map(|v| v.value))
    }

    /// Stores a new document.
    ///
    /// # Errors
    /// [`StoreError::AlreadyExists`] if `key` is taken; a storage failure.
    pub async fn insert(&self, key: &str, value: &T) -> Result<(), StoreError> {
        self.save(key, value, None).await
    }

    /// Stores `value` under `key` once, only over the version read (`None`: only if new).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] or [`StoreError::NotFound`] if the stored document is no
    /// longer the one read, [`StoreError::AlreadyExists`] if a new one is not new; a storage
    /// failure.
    pub async fn save(&self, key: &str, value: &T, read: Option<u32>) -> Result<(), StoreError> {
        let write = Self::write(key, value, read)?;
        self.store
            .put_document(&write.document, write.expected_version)
            .await
    }

    /// Reads the document (`None` if there is none), lets `change` decide, and stores what it
    /// made unless another writer stored the document meanwhile, in which case it reads again
    /// and asks again — up to [`CONFLICT_RETRIES`] times.
    ///
    /// # Errors
    /// What `change` answers; a storage failure; [`AppError::Unavailable`] if the document
    /// kept changing.
    pub async fn modify<R: Send>(
        &self,
        key: &str,
        mut change: impl FnMut(Option<T>) -> Result<Change<T, R>, AppError> + Send,
    ) -> Result<R, AppError> {
        for _ in 0..CONFLICT_RETRIES {
            let read = self.get(key).await?;
            let version = read.as_ref().map(|r| r.version);
            let (mut value, answer) = match change(read.map(|r| r.value))? {
                Change::Write(value, answer) => (value, answer),
                Change::Keep(answer) => return Ok(answer),
            };
            value.set_version(version.map_or(1, |v| v + 1));
            match self.save(key, &value, version).await {
                Ok(()) => return Ok(answer),
                Err(StoreError::Conflict | StoreError::AlreadyExists | StoreError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppError::Unavailable(format!(
            "the {} {key} kept changing; try again",
            T::KIND.as_str()
        )))
    }

    /// Changes the document in place if there is one: `change` answers whether it changed
    /// anything. The document as it is afterwards, `None` if there is none.
    ///
    /// # Errors
    /// As [`Documents::modify`].
    pub async fn update(
        &self,
        key: &str,
        mut change: impl FnMut(&mut T) -> bool + Send,
    ) -> Result<Option<T>, AppError>
    where
        T: Clone,
    {
        self.modify(key, |read| {
            Ok(match read {
                None => Change::Keep(None),
                Some(mut value) => {
                    if change(&mut value) {
                        Change::Write(value.clone(), Some(value))
                    } else {
                        Change::Keep(Some(value))
                    }
                }
            })
        })
        .await
    }

    /// Stores `value` under `key` whether or not there is one already.
    ///
    /// # Errors
    /// As [`Documents::modify`].
    pub async fn put(&self, key: &str, value: &T) -> Result<(), AppError>
    where
        T: Clone,
    {
        self.modify(key, |_| Ok(Change::Write(value.clone(), ())))
            .await
    }

    /// Documents in key order after `after`, at most `limit` (a store may answer fewer; only
    /// an empty answer means there are no more), with their keys.
    ///
    /// # Errors
    /// A storage failure; [`StoreError::Corrupt`] for a document that is not a `T`.
    pub async fn page(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, T)>, StoreError> {
        let docs = self.store.documents(T::KIND, after, limit).await?;
        docs.into_iter()
            .map(|doc| {
                let mut value: T = decode(&doc)?;
                value.set_version(doc.version);
                Ok((doc.key, value))
            })
            .collect()
    }

    /// Every document of the kind, in key order.
    ///
    /// # Errors
    /// As [`Documents::page`].
    pub async fn all(&self) -> Result<Vec<(String, T)>, StoreError> {
        let mut out: Vec<(String, T)> = Vec::new();
        loop {
            let after = out.last().map(|(key, _)| key.clone());
            let page = self.page(after.as_deref(), 100).await?;
            if page.is_empty() {
                return Ok(out);
            }
            out.extend(page);
        }
    }

    /// The write of `value` under `key` as data, for a [`crate::ports::Commit`]: new if `read`
    /// is `None`, else only over the version read.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if the value cannot be written as JSON.
    pub fn write(key: &str, value: &T, read: Option<u32>) -> Result<DocumentWrite, StoreError> {
        Ok(DocumentWrite {
            document: Document {
                kind: T::KIND,
                key: key.to_owned(),
                version: read.map_or(1, |v| v + 1),
                body: serde_json::to_string(value)
                    .map_err(|e| StoreError::Corrupt(format!("{} {key}: {e}", T::KIND.as_str())))?,
            },
            expected_version: read,
        })
    }
}

fn decode<T: DocumentType>(doc: &Document) -> Result<T, StoreError> {
    serde_json::from_str(&doc.body)
        .map_err(|e| StoreError::Corrupt(format!("{} {}: {e}", T::KIND.as_str(), doc.key)))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::memory::MemoryStore;

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    struct Counter {
        n: u32,
        name: String,
    }

    impl DocumentType for Counter {
        const KIND: DocKind = DocKind::Notes;
    }

    fn counters() -> (Arc<MemoryStore>, Documents<Counter>) {
        let store = Arc::new(MemoryStore::new());
        (Arc::clone(&store), Documents::new(store))
    }

    #[tokio::test]
    async fn a_document_round_trips_byte_exact_with_its_version() {
        let (_, docs) = counters();
        let value = Counter {
            n: 1,
            name: "Zoë 👩‍👩‍👧 السلام 日本".into(),
        };
        docs.insert("a", &value).await.unwrap();
        assert_eq!(
            docs.get("a").await.unwrap(),
            Some(Versioned { value, version: 1 })
        );
        assert!(matches!(
            docs.insert(
                "a",
                &Counter {
                    n: 2,
                    name: String::new()
                }
            )
            .await,
            Err(StoreError::AlreadyExists)
        ));
        assert_eq!(docs.value("b").await.unwrap(), None);
    }

    #[tokio::test]
    async fn concurrent_modifications_are_each_applied_once() {
        let (_, docs) = counters();
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let docs = docs.clone();
                tokio::spawn(async move {
                    docs.modify("c", |read| {
                        let mut c = read.unwrap_or(Counter {
                            n: 0,
                            name: "c".into(),
                        });
                        c.n += 1;
                        let n = c.n;
                        Ok(Change::Write(c, n))
                    })
                    .await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let read = docs.get("c").await.unwrap().unwrap();
        assert_eq!(read.value.n, 6);
        assert_eq!(read.version, 6);
    }

    #[tokio::test]
    async fn keep_writes_nothing_and_a_refusal_is_the_answer() {
        let (_, docs) = counters();
        let kept = docs
            .modify("k", |_| Ok(Change::<Counter, u8>::Keep(7)))
            .await;
        assert_eq!(kept.unwrap(), 7);
        assert_eq!(docs.get("k").await.unwrap(), None);
        let refused = docs
            .modify("k", |_| -> Result<Change<Counter, ()>, _> {
                Err(AppError::invalid("n", "no"))
            })
            .await;
        assert!(matches!(refused, Err(AppError::Invalid(_))));
        assert_eq!(docs.update("k", |_| true).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_document_that_is_not_its_type_is_corrupt_not_a_panic() {
        let (store, docs) = counters();
        store
            .put_document(
                &Document {
                    kind: DocKind::Notes,
                    key: "x".into(),
                    version: 1,
                    body: "[1,2]".into(),
                },
                None,
            )
            .await
            .unwrap();
        assert!(
            matches!(docs.get("x").await, Err(StoreError::Corrupt(m)) if m.contains("notes x"))
        );
    }

    #[tokio::test]
    async fn pages_walk_every_document_in_key_order() {
        let (_, docs) = counters();
        for i in 0..230 {
            docs.insert(
                &format!("{i:04}"),
                &Counter {
                    n: i,
                    name: String::new(),
                },
            )
            .await
            .unwrap();
        }
        let all = docs.all().await.unwrap();
        assert_eq!(all.len(), 230);
        assert!(all.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(all[229].1.n, 229);
    }
}
