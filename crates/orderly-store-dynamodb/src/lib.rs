//! Orderly's serverless storage: every storage port on one DynamoDB table.
//!
//! # Layout
//! - [`DynamoStore`]: the adapter; [`DynamoStore::create_table`] makes the table and its indexes
//!   (the SAM template declares the same).
//! - `impl UnitOfWork`: one `TransactWriteItems` per [`Commit`]; each condition that fails is
//!   mapped back to the rule it guards (order version, stock never below zero, idempotency key,
//!   handled event). Conflicting transactions are retried with backoff.
//! - `impl JobQueue`: jobs live beside their order and in a due-time index; a claim leases a job
//!   by moving it in that index to the lease's end, with a condition so two claimers never both
//!   win. Only the first job of an order in each lane (saga, notify; from the job's consumer)
//!   may be claimed.
//! - [`testing`]: a fresh table per test on the local AWS emulator.
//!
//! # Table design (single table, keys `pk`/`sk`)
//!
//! | item | pk | sk | indexes |
//! |---|---|---|---|
//! | product | `PRODUCT#<id>` | `PRODUCT` | `lists`: `PRODUCTS` / id |
//! | stock | `PRODUCT#<id>` | `STOCK` | |
//! | adjustment | `PRODUCT#<id>` | `ADJ#<at>#<uuid>` | |
//! | customer | `CUSTOMER#<id>` | `CUSTOMER` | |
//! | order | `ORDER#<uuid>` | `ORDER` | `lists`: `ORDERS`; `by_customer`; `by_status`; `by_customer_status` — all sorted by the time-ordered order id |
//! | event (outbox) | `ORDER#<uuid>` | `EVENT#<version>#<event id>` | |
//! | job | `ORDER#<uuid>` | `JOB#<id>` | `lists`: `JOBS` / `<due or lease end>#<id>` |
//! | idempotency key | `IDEMPOTENCY#<key>` | `KEY` | |
//! | handled event | `HANDLED#<consumer>#<event id>` | `HANDLED` | |
//! | job id counter | `COUNTER` | `JOBS` | |
#![forbid(unsafe_code)]

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, Delete, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, KeysAndAttributes, Projection, ProjectionType, Put, ReturnValue,
    ScalarAttributeType, Select, StreamSpecification, StreamViewType, TransactWriteItem, Update,
};
use orderly_core::ports::{
    CatalogStore, Commit, CommitError, Consumer, DocKind, Document, DocumentStore,
    IdempotencyRecord, Job, JobQueue, Lane, OrderFilter, OrderStore, OrderWrite, Page, PageRequest,
    Readiness, StockStore, StoreError, UnitOfWork, WaitingJob,
};
use orderly_core::storage::{self, decode, encode};
use orderly_domain::{
    Customer, CustomerId, Event, Order, OrderId, OrderStatus, Product, ProductId, StockAdjustment,
    StockLevel, Timestamp,
};

pub mod testing;

/// The DynamoDB client, for callers that build the store over their own SDK configuration.
pub use aws_sdk_dynamodb::Client;

type Item = HashMap<String, AttributeValue>;

/// Where the table is.
#[derive(Clone, Debug)]
pub struct DynamoSettings {
    /// Table name.
    pub table: String,
    /// An endpoint other than AWS's (the local emulator).
    pub endpoint: Option<String>,
    /// Region, e.g. `eu-west-1`; from the environment if absent.
    pub region: Option<String>,
    /// Static credentials (for the emulator); from the environment if absent.
    pub static_credentials: Option<(String, String)>,
}

/// Every storage port on one DynamoDB table.
#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn sdk_error<E: std::error::Error + 'static, R: std::fmt::Debug>(e: SdkError<E, R>) -> StoreError {
    StoreError::Unavailable(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
}

/// `Ok(true)` if a conditional write was done, `Ok(false)` if its condition did not hold (the
/// item changed or went meanwhile), the error otherwise.
fn conditional<T, E, R>(result: Result<T, SdkError<E, R>>) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error().and_then(ProvideErrorMetadata::code)
                == Some("ConditionalCheckFailedException") =>
        {
            Ok(false)
        }
        Err(e) => Err(sdk_error(e)),
    }
}

fn text(item: &Item, name: &str) -> Result<String, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        _ => Err(StoreError::Corrupt(format!(
            "item has no text attribute {name}"
        ))),
    }
}

fn number(item: &Item, name: &str) -> Result<i64, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("{name} is not an integer: {v}"))),
        _ => Err(StoreError::Corrupt(format!(
            "item has no number attribute {name}"
        ))),
    }
}

fn order_pk(id: OrderId) -> String {
    format!("ORDER#{id}")
}

fn product_pk(id: &ProductId) -> String {
    format!("PRODUCT#{id}")
}

fn job_sk(id: i64) -> String {
    format!("JOB#{id:020}")
}

/// Sort key of a job in the due index: due (or lease end) first, then id.
fn job_lsk(at: i64, id: i64) -> String {
    format!("{:020}#{id:020}", at.max(0))
}

fn key(pk: String, sk: &str) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

/// What a failed condition of a transaction item means.
#[derive(Clone, Debug)]
enum Guard {
    None,
    Handled,
    Idempotency,
    NewOrder,
    OrderVersion(OrderId),
    Stock(ProductId),
    Document(DocKind, String),
}

impl DynamoStore {
    /// How many items of `index` match `condition` (with `values`), page by page.
    async fn count(
        &self,
        index: &str,
        condition: &str,
        values: &[(&str, AttributeValue)],
    ) -> Result<u64, StoreError> {
        let mut count = 0u64;
        let mut start = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(index)
                .key_condition_expression(condition)
                .select(Select::Count)
                .set_exclusive_start_key(start);
            for (name, value) in values {
                query = query.expression_attribute_values(*name, value.clone());
            }
            let out = query.send().await.map_err(sdk_error)?;
            count += u64::try_from(out.count).unwrap_or(0);
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(count);
            }
        }
    }

    /// A client for the table (the table must exist; see [`DynamoStore::create_table`]).
    pub async fn connect(settings: &DynamoSettings) -> DynamoStore {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(endpoint) = &settings.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(region) = &settings.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some((id, secret)) = &settings.static_credentials {
            loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                id, secret, None, None, "static",
            ));
        }
        let config = loader.load().await;
        DynamoStore {
            client: Client::new(&config),
            table: settings.table.clone(),
        }
    }

    /// A store over an existing client.
    #[must_use]
    pub fn with_client(client: Client, table: impl Into<String>) -> DynamoStore {
        DynamoStore {
            client,
            table: table.into(),
        }
    }

    /// The table's name.
    #[must_use]
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the table with its four indexes and a stream of new images (for the outbox
    /// relay), on-demand billing. Does nothing if it exists.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if DynamoDB refuses.
    pub async fn create_table(&self) -> Result<(), StoreError> {
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(unavailable)
        };
        let key_schema = |pk: &str, sk: &str| -> Result<Vec<KeySchemaElement>, StoreError> {
            Ok(vec![
                KeySchemaElement::builder()
                    .attribute_name(pk)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(unavailable)?,
                KeySchemaElement::builder()
                    .attribute_name(sk)
                    .key_type(KeyType::Range)
                    .build()
                    .map_err(unavailable)?,
            ])
        };
        let mut indexes = Vec::new();
        for (name, pk, sk) in INDEXES {
            indexes.push(
                GlobalSecondaryIndex::builder()
                    .index_name(name)
                    .set_key_schema(Some(key_schema(pk, sk)?))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build()
                    .map_err(unavailable)?,
            );
        }
        let mut definitions = vec![attr("pk")?, attr("sk")?];
        for (_, pk, sk) in INDEXES {
            definitions.push(attr(pk)?);
            definitions.push(attr(sk)?);
        }
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .set_key_schema(Some(key_schema("pk", "sk")?))
            .set_attribute_definitions(Some(definitions))
            .set_global_secondary_indexes(Some(indexes))
            .billing_mode(BillingMode::PayPerRequest)
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewImage)
                    .build()
                    .map_err(unavailable)?,
            )
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_in_use_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(sdk_error(e)),
        }
    }

    /// Deletes the table (tests).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn delete_table(&self) -> Result<(), StoreError> {
        self.client
            .delete_table()
            .table_name(&self.table)
            .send()
            .await
            .map(|_| ())
            .map_err(sdk_error)
    }

    async fn get(&self, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
        self.client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map(|out| out.item)
            .map_err(sdk_error)
    }

    async fn doc<T: serde::de::DeserializeOwned>(
        &self,
        pk: String,
        sk: &str,
    ) -> Result<Option<T>, StoreError> {
        self.get(pk, sk)
            .await?
            .map(|item| decode(&text(&item, "doc")?))
            .transpose()
    }

    /// The documents under `keys` (missing ones left out): BatchGetItem, 100 keys a call,
    /// unprocessed keys asked again.
    async fn batch_docs<T: serde::de::DeserializeOwned>(
        &self,
        keys: impl Iterator<Item = Item>,
    ) -> Result<Vec<T>, StoreError> {
        let keys: Vec<Item> = keys.collect();
        let mut found = Vec::new();
        for chunk in keys.chunks(100) {
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(chunk.to_vec()))
                    .consistent_read(true)
                    .build()
                    .map_err(unavailable)?,
            );
            while let Some(request) = pending.take() {
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(sdk_error)?;
                for item in out
                    .responses
                    .unwrap_or_default()
                    .remove(&self.table)
                    .unwrap_or_default()
                {
                    found.push(decode(&text(&item, "doc")?)?);
                }
                pending = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .filter(|k| !k.keys().is_empty());
            }
        }
        Ok(found)
    }

    /// Items of one partition whose sort key starts with `prefix`.
    async fn partition(
        &self,
        pk: String,
        prefix: &str,
        forward: bool,
        limit: Option<i32>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(pk.clone()))
                .expression_attribute_values(":prefix", s(prefix))
                .scan_index_forward(forward)
                .consistent_read(true)
                .set_limit(limit)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(sdk_error)?;
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() || limit.is_some_and(|l| items.len() >= l as usize) {
                return Ok(items);
            }
        }
    }

    /// Up to `limit` items of an index partition, in sort-key order, from `start`.
    #[allow(clippy::too_many_arguments)]
    async fn index_page(
        &self,
        index: &str,
        (pk_name, pk): (&str, String),
        (sk_name, upper): (&str, Option<String>),
        forward: bool,
        limit: i32,
        start: Option<Item>,
    ) -> Result<(Vec<Item>, Option<Item>), StoreError> {
        let mut condition = format!("{pk_name} = :pk");
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .expression_attribute_values(":pk", s(pk));
        if let Some(upper) = upper {
            condition.push_str(&format!(" AND {sk_name} <= :upper"));
            query = query.expression_attribute_values(":upper", s(upper));
        }
        let out = query
            .key_condition_expression(condition)
            .scan_index_forward(forward)
            .limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(sdk_error)?;
        Ok((out.items.unwrap_or_default(), out.last_evaluated_key))
    }

    /// Reserves `count` job ids.
    async fn job_ids(&self, count: usize) -> Result<Vec<i64>, StoreError> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let count = i64::try_from(count).map_err(unavailable)?;
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key("COUNTER".to_owned(), "JOBS")))
            .update_expression("ADD seq :n")
            .expression_attribute_values(":n", n(count))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(sdk_error)?;
        let last = number(&out.attributes.unwrap_or_default(), "seq")?;
        Ok((last - count + 1..=last).collect())
    }

    fn put(&self, item: Item, condition: Option<&str>) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_owned))
            .build()
            .map_err(unavailable)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn order_item(order: &Order) -> Result<Item, StoreError> {
        let id = order.id.to_string();
        let status = order.status.as_str();
        let customer = order.customer_id.as_str();
        Ok(HashMap::from([
            ("pk".to_owned(), s(order_pk(order.id))),
            ("sk".to_owned(), s("ORDER")),
            ("doc".to_owned(), s(encode(order)?)),
            ("version".to_owned(), n(i64::from(order.version))),
            ("lpk".to_owned(), s("ORDERS")),
            ("lsk".to_owned(), s(id.clone())),
            ("g1pk".to_owned(), s(format!("C#{customer}"))),
            ("g1sk".to_owned(), s(id.clone())),
            ("g2pk".to_owned(), s(format!("S#{status}"))),
            ("g2sk".to_owned(), s(id.clone())),
            ("g3pk".to_owned(), s(format!("CS#{customer}#{status}"))),
            ("g3sk".to_owned(), s(id)),
        ]))
    }

    /// The transaction items of a commit, each with what its condition guards.
    async fn transact_items(
        &self,
        commit: &Commit,
    ) -> Result<Vec<(TransactWriteItem, Guard)>, StoreError> {
        let mut items = Vec::new();
        if let Some(h) = &commit.handled {
            let item = HashMap::from([
                (
                    "pk".to_owned(),
                    s(format!("HANDLED#{}#{}", h.consumer.as_str(), h.event_id)),
                ),
                ("sk".to_owned(), s("HANDLED")),
            ]);
            items.push((
                self.put(item, Some("attribute_not_exists(pk)"))?,
                Guard::Handled,
            ));
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key(order_pk(h.order_id), &job_sk(h.job_id))))
                .build()
                .map_err(unavailable)?;
            items.push((
                TransactWriteItem::builder().delete(delete).build(),
                Guard::None,
            ));
        }
        if let Some(rec) = &commit.idempotency {
            let item = HashMap::from([
                ("pk".to_owned(), s(format!("IDEMPOTENCY#{}", rec.key))),
                ("sk".to_owned(), s("KEY")),
                ("request_hash".to_owned(), s(rec.request_hash.clone())),
                ("order_id".to_owned(), s(rec.order_id.to_string())),
                ("created_at".to_owned(), n(rec.created_at.millis())),
            ]);
            items.push((
                self.put(item, Some("attribute_not_exists(pk)"))?,
                Guard::Idempotency,
            ));
        }
        match &commit.order {
            Some(OrderWrite::Insert(order)) => {
                items.push((
                    self.put(Self::order_item(order)?, Some("attribute_not_exists(pk)"))?,
                    Guard::NewOrder,
                ));
            }
            Some(OrderWrite::Update {
                order,
                expected_version,
            }) => {
                let put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(Self::order_item(order)?))
                    .condition_expression("version = :expected")
                    .expression_attribute_values(":expected", n(i64::from(*expected_version)))
                    .build()
                    .map_err(unavailable)?;
                items.push((
                    TransactWriteItem::builder().put(put).build(),
                    Guard::OrderVersion(order.id),
                ));
            }
            None => {}
        }
        for m in &commit.stock {
            // Conditions cannot add: "available + Δ >= 0" is written "available >= -Δ".
            let update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(product_pk(&m.product_id), "STOCK")))
                .update_expression("SET available = available + :a, reserved = reserved + :r")
                .condition_expression(
                    "attribute_exists(pk) AND available >= :need_a AND reserved >= :need_r",
                )
                .expression_attribute_values(":a", n(m.available))
                .expression_attribute_values(":r", n(m.reserved))
                .expression_attribute_values(":need_a", n((-m.available).max(0)))
                .expression_attribute_values(":need_r", n((-m.reserved).max(0)))
                .build()
                .map_err(unavailable)?;
            items.push((
                TransactWriteItem::builder().update(update).build(),
                Guard::Stock(m.product_id.clone()),
            ));
        }
        if let Some(a) = &commit.adjustment {
            let item = HashMap::from([
                ("pk".to_owned(), s(product_pk(&a.product_id))),
                (
                    "sk".to_owned(),
                    s(format!(
                        "ADJ#{:020}#{}",
                        a.at.millis(),
                        uuid::Uuid::now_v7()
                    )),
                ),
                ("delta".to_owned(), n(a.delta)),
                ("reason".to_owned(), s(a.reason.clone())),
                ("actor".to_owned(), s(a.actor.clone())),
                ("at".to_owned(), n(a.at.millis())),
            ]);
            items.push((self.put(item, None)?, Guard::None));
        }
        for w in &commit.documents {
            let doc = &w.document;
            let item = HashMap::from([
                ("pk".to_owned(), s(doc_pk(doc.kind))),
                ("sk".to_owned(), s(doc.key.clone())),
                ("version".to_owned(), n(i64::from(doc.version))),
                ("doc".to_owned(), s(doc.body.clone())),
            ]);
            let put = Put::builder().table_name(&self.table).set_item(Some(item));
            let put = match w.expected_version {
                None => put.condition_expression("attribute_not_exists(pk)"),
                Some(v) => put
                    .condition_expression("version = :expected")
                    .expression_attribute_values(":expected", n(i64::from(v))),
            };
            items.push((
                TransactWriteItem::builder()
                    .put(put.build().map_err(unavailable)?)
                    .build(),
                Guard::Document(doc.kind, doc.key.clone()),
            ));
        }
        let job_count: usize = commit.events.iter().map(|e| e.consumers.len()).sum();
        let mut ids = self.job_ids(job_count).await?.into_iter();
        for out in &commit.events {
            let event = &out.event;
            let payload = encode(event)?;
            let item = HashMap::from([
                ("pk".to_owned(), s(order_pk(event.order_id))),
                (
                    "sk".to_owned(),
                    s(format!("EVENT#{:010}#{}", event.order_version, event.id)),
                ),
                ("kind".to_owned(), s(event.kind.as_str())),
                ("payload".to_owned(), s(payload.clone())),
            ]);
            items.push((self.put(item, None)?, Guard::None));
            for consumer in &out.consumers {
                let id = ids
                    .next()
                    .ok_or_else(|| StoreError::Corrupt("job id counter short".into()))?;
                let item = HashMap::from([
                    ("pk".to_owned(), s(order_pk(event.order_id))),
                    ("sk".to_owned(), s(job_sk(id))),
                    ("job_id".to_owned(), n(id)),
                    ("consumer".to_owned(), s(consumer.as_str())),
                    ("payload".to_owned(), s(payload.clone())),
                    ("attempts".to_owned(), n(0)),
                    ("next_at".to_owned(), n(0)),
                    ("lpk".to_owned(), s("JOBS")),
                    ("lsk".to_owned(), s(job_lsk(0, id))),
                ]);
                items.push((self.put(item, None)?, Guard::None));
            }
        }
        Ok(items)
    }

    /// True if the job `sk` is the first outstanding job of its order in its lane: the
    /// only one of that lane that may run.
    async fn job_is_head(
        &self,
        order_pk: String,
        sk: &str,
        lane: Lane,
    ) -> Result<bool, StoreError> {
        // An order has a handful of jobs at most; read them all and find the lane's first.
        for item in self.partition(order_pk, "JOB#", true, None).await? {
            if job_lane(&item)? == lane {
                return Ok(text(&item, "sk")? == sk);
            }
        }
        Ok(false)
    }

    /// Every job item in due-index order (leased ones sorted by their lease's end).
    async fn all_jobs(&self, upper: Option<String>, limit: usize) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let (page, next) = self
                .index_page(
                    "lists",
                    ("lpk", "JOBS".to_owned()),
                    ("lsk", upper.clone()),
                    true,
                    100,
                    start,
                )
                .await?;
            items.extend(page);
            start = next;
            if start.is_none() || items.len() >= limit {
                return Ok(items);
            }
        }
    }

    /// Frees the leases of jobs, every one or only those ending at `only`. A lease taken
    /// again meanwhile is left alone.
    async fn release(&self, only: Option<Timestamp>) -> Result<u64, StoreError> {
        let mut released = 0;
        for item in self.all_jobs(None, usize::MAX).await? {
            let Some(held) = item.get("lease_until").cloned() else {
                continue;
            };
            if only.is_some_and(|lease| number(&item, "lease_until").ok() != Some(lease.millis())) {
                continue;
            }
            let id = number(&item, "job_id")?;
            let done = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(text(&item, "pk")?, &text(&item, "sk")?)))
                .update_expression("SET lsk = :lsk REMOVE lease_until")
                .condition_expression("lease_until = :held")
                .expression_attribute_values(":lsk", s(job_lsk(number(&item, "next_at")?, id)))
                .expression_attribute_values(":held", held)
                .send()
                .await;
            if conditional(done)? {
                released += 1;
            }
        }
        Ok(released)
    }
}

/// The global secondary indexes: name, partition key, sort key.
const INDEXES: [(&str, &str, &str); 4] = [
    ("lists", "lpk", "lsk"),
    ("by_customer", "g1pk", "g1sk"),
    ("by_status", "g2pk", "g2sk"),
    ("by_customer_status", "g3pk", "g3sk"),
];

#[async_trait]
impl CatalogStore for DynamoStore {
    async fn create_product(
        &self,
        product: &Product,
        initial_stock: i64,
    ) -> Result<(), StoreError> {
        let item = HashMap::from([
            ("pk".to_owned(), s(product_pk(&product.id))),
            ("sk".to_owned(), s("PRODUCT")),
            ("doc".to_owned(), s(encode(product)?)),
            ("version".to_owned(), n(i64::from(product.version))),
            ("lpk".to_owned(), s("PRODUCTS")),
            ("lsk".to_owned(), s(product.id.as_str())),
        ]);
        let stock = HashMap::from([
            ("pk".to_owned(), s(product_pk(&product.id))),
            ("sk".to_owned(), s("STOCK")),
            ("available".to_owned(), n(initial_stock)),
            ("reserved".to_owned(), n(0)),
        ]);
        let result = self
            .client
            .transact_write_items()
            .transact_items(self.put(item, Some("attribute_not_exists(pk)"))?)
            .transact_items(self.put(stock, Some("attribute_not_exists(pk)"))?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c))
                    if c.cancellation_reasons().iter().any(|r| r.code() == Some("ConditionalCheckFailed")) =>
                {
                    Err(StoreError::AlreadyExists)
                }
                _ => Err(sdk_error(e)),
            },
        }
    }

    async fn update_product(
        &self,
        product: &Product,
        expected_version: u32,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(product_pk(&product.id), "PRODUCT")))
            .update_expression("SET doc = :doc, version = :version")
            .condition_expression("attribute_exists(pk) AND version = :expected")
            .expression_attribute_values(":doc", s(encode(product)?))
            .expression_attribute_values(":version", n(i64::from(product.version)))
            .expression_attribute_values(":expected", n(i64::from(expected_version)))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Err(match self.get(product_pk(&product.id), "PRODUCT").await? {
                    Some(_) => StoreError::Conflict,
                    None => StoreError::NotFound,
                })
            }
            Err(e) => Err(sdk_error(e)),
        }
    }

    async fn product(&self, id: &ProductId) -> Result<Option<Product>, StoreError> {
        self.doc(product_pk(id), "PRODUCT").await
    }

    async fn products(&self, ids: &[ProductId]) -> Result<Vec<Product>, StoreError> {
        let unique: HashSet<&ProductId> = ids.iter().collect();
        self.batch_docs(unique.into_iter().map(|id| key(product_pk(id), "PRODUCT")))
            .await
    }

    async fn list_products(&self, page: &PageRequest) -> Result<Page<Product>, StoreError> {
        let after = storage::key_cursor(page.cursor.as_ref(), 'p')?;
        let start = after.map(|id| {
            let mut k = key(format!("PRODUCT#{id}"), "PRODUCT");
            k.insert("lpk".to_owned(), s("PRODUCTS"));
            k.insert("lsk".to_owned(), s(id));
            k
        });
        let limit = i32::try_from(page.limit + 1).map_err(unavailable)?;
        let (items, _) = self
            .index_page(
                "lists",
                ("lpk", "PRODUCTS".to_owned()),
                ("lsk", None),
                true,
                limit,
                start,
            )
            .await?;
        let rows = items
            .iter()
            .map(|i| Ok((text(i, "lsk")?, text(i, "doc")?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        storage::page(rows, page.limit, |id| format!("p{id}"))
    }

    async fn create_customer(&self, customer: &Customer) -> Result<(), StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("CUSTOMER#{}", customer.id)))
            .item("sk", s("CUSTOMER"))
            .item("doc", s(encode(customer)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::AlreadyExists)
            }
            Err(e) => Err(sdk_error(e)),
        }
    }

    async fn customer(&self, id: &CustomerId) -> Result<Option<Customer>, StoreError> {
        self.doc(format!("CUSTOMER#{id}"), "CUSTOMER").await
    }

    async fn customers(&self, ids: &[CustomerId]) -> Result<Vec<Customer>, StoreError> {
        let unique: HashSet<&CustomerId> = ids.iter().collect();
        self.batch_docs(
            unique
                .into_iter()
                .map(|id| key(format!("CUSTOMER#{id}"), "CUSTOMER")),
        )
        .await
    }
}

/// Documents live in one partition per kind (`DOC#cart`), sorted by key.
fn doc_pk(kind: DocKind) -> String {
    format!("DOC#{}", kind.as_str())
}

fn document(kind: DocKind, item: &Item) -> Result<Document, StoreError> {
    Ok(Document {
        kind,
        key: text(item, "sk")?,
        version: u32::try_from(number(item, "version")?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        body: text(item, "doc")?,
    })
}

#[async_trait]
impl DocumentStore for DynamoStore {
    async fn document(&self, kind: DocKind, key: &str) -> Result<Option<Document>, StoreError> {
        self.get(doc_pk(kind), key)
            .await?
            .map(|item| document(kind, &item))
            .transpose()
    }

    async fn put_document(
        &self,
        doc: &Document,
        expected_version: Option<u32>,
    ) -> Result<(), StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(doc_pk(doc.kind)))
            .item("sk", s(doc.key.clone()))
            .item("version", n(i64::from(doc.version)))
            .item("doc", s(doc.body.clone()));
        let put = match expected_version {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(v) => put
                .condition_expression("version = :expected")
                .expression_attribute_values(":expected", n(i64::from(v))),
        };
        match put.send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Err(
                    match (expected_version, self.document(doc.kind, &doc.key).await?) {
                        (None, _) => StoreError::AlreadyExists,
                        (Some(_), Some(_)) => StoreError::Conflict,
                        (Some(_), None) => StoreError::NotFound,
                    },
                )
            }
            Err(e) => Err(sdk_error(e)),
        }
    }

    async fn documents(
        &self,
        kind: DocKind,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Document>, StoreError> {
        let limit = i32::try_from(limit).map_err(unavailable)?;
        let start = after.map(|a| key(doc_pk(kind), a));
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(doc_pk(kind)))
            .consistent_read(true)
            .limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(sdk_error)?;
        out.items
            .unwrap_or_default()
            .iter()
            .map(|item| document(kind, item))
            .collect()
    }
}

/// A Dynamo cursor: `d` and the last order id of the page.
fn order_cursor(cursor: Option<&String>) -> Result<Option<OrderId>, StoreError> {
    cursor
        .map(|c| {
            c.strip_prefix('d')
                .and_then(|id| OrderId::parse(id).ok())
                .ok_or(StoreError::InvalidCursor)
        })
        .transpose()
}

#[async_trait]
impl OrderStore for DynamoStore {
    async fn order(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        self.doc(order_pk(id), "ORDER").await
    }

    async fn list_orders(
        &self,
        filter: &OrderFilter,
        page: &PageRequest,
    ) -> Result<Page<Order>, StoreError> {
        let after = order_cursor(page.cursor.as_ref())?;
        let (index, pk_name, sk_name, pk) = match (filter.status, &filter.customer_id) {
            (None, None) => ("lists", "lpk", "lsk", "ORDERS".to_owned()),
            (Some(st), None) => ("by_status", "g2pk", "g2sk", format!("S#{}", st.as_str())),
            (None, Some(c)) => ("by_customer", "g1pk", "g1sk", format!("C#{c}")),
            (Some(st), Some(c)) => (
                "by_customer_status",
                "g3pk",
                "g3sk",
                format!("CS#{c}#{}", st.as_str()),
            ),
        };
        let start = after.map(|id| {
            let mut k = key(order_pk(id), "ORDER");
            k.insert(pk_name.to_owned(), s(pk.clone()));
            k.insert(sk_name.to_owned(), s(id.to_string()));
            k
        });
        let limit = i32::try_from(page.limit + 1).map_err(unavailable)?;
        let (items, _) = self
            .index_page(
                index,
                (pk_name, pk.clone()),
                (sk_name, None),
                false,
                limit,
                start,
            )
            .await?;
        let rows = items
            .iter()
            .map(|i| Ok((text(i, sk_name)?, text(i, "doc")?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        storage::page(rows, page.limit, |id| format!("d{id}"))
    }

    async fn orders_with_id_prefix(
        &self,
        prefix: &orderly_domain::search::OrderIdPrefix,
        limit: u32,
    ) -> Result<Vec<Order>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("lists")
            .key_condition_expression("lpk = :pk AND begins_with(lsk, :prefix)")
            .expression_attribute_values(":pk", s("ORDERS"))
            .expression_attribute_values(":prefix", s(prefix.as_str()))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(sdk_error)?;
        out.items
            .unwrap_or_default()
            .iter()
            .map(|item| decode(&text(item, "doc")?))
            .collect()
    }

    async fn count_orders(&self, since: Timestamp) -> Result<Vec<(OrderStatus, u64)>, StoreError> {
        // An order's id is a UUIDv7 whose first 48 bits are the moment it was placed: every id
        // placed at or after `since` sorts at or after this prefix in the status index.
        let ms = u64::try_from(since.millis()).unwrap_or(0);
        let from = format!("{:08x}-{:04x}-", ms >> 16, ms & 0xffff);
        let mut counts = Vec::new();
        for status in OrderStatus::ALL {
            let count = self
                .count(
                    "by_status",
                    "g2pk = :pk AND g2sk >= :from",
                    &[
                        (":pk", s(format!("S#{}", status.as_str()))),
                        (":from", s(from.clone())),
                    ],
                )
                .await?;
            if count > 0 {
                counts.push((status, count));
            }
        }
        Ok(counts)
    }

    async fn order_events(&self, id: OrderId) -> Result<Vec<Event>, StoreError> {
        self.partition(order_pk(id), "EVENT#", true, None)
            .await?
            .iter()
            .map(|item| decode(&text(item, "payload")?))
            .collect()
    }

    async fn idempotency(&self, key_text: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let Some(item) = self.get(format!("IDEMPOTENCY#{key_text}"), "KEY").await? else {
            return Ok(None);
        };
        Ok(Some(IdempotencyRecord {
            key: key_text.to_owned(),
            request_hash: text(&item, "request_hash")?,
            order_id: OrderId::parse(&text(&item, "order_id")?)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            created_at: Timestamp::from_millis(number(&item, "created_at")?),
        }))
    }
}

#[async_trait]
impl StockStore for DynamoStore {
    async fn stock(&self, id: &ProductId) -> Result<Option<StockLevel>, StoreError> {
        self.get(product_pk(id), "STOCK")
            .await?
            .map(|item| {
                Ok(StockLevel {
                    available: number(&item, "available")?,
                    reserved: number(&item, "reserved")?,
                })
            })
            .transpose()
    }

    async fn adjustments(
        &self,
        id: &ProductId,
        limit: u32,
    ) -> Result<Vec<StockAdjustment>, StoreError> {
        let limit = i32::try_from(limit).map_err(unavailable)?;
        self.partition(product_pk(id), "ADJ#", false, Some(limit))
            .await?
            .iter()
            .take(usize::try_from(limit).unwrap_or(0))
            .map(|item| {
                Ok(StockAdjustment {
                    product_id: id.clone(),
                    delta: number(item, "delta")?,
                    reason: text(item, "reason")?,
                    actor: text(item, "actor")?,
                    at: Timestamp::from_millis(number(item, "at")?),
                })
            })
            .collect()
    }
}

/// Transactions retried after a conflict with another transaction.
const RETRIES: u32 = 6;

#[async_trait]
impl UnitOfWork for DynamoStore {
    async fn commit(&self, commit: Commit) -> Result<(), CommitError> {
        let items = self.transact_items(&commit).await?;
        if items.is_empty() {
            return Ok(());
        }
        if items.len() > 100 {
            return Err(CommitError::Store(StoreError::Unavailable(format!(
                "a commit of {} items exceeds DynamoDB's 100 per transaction",
                items.len()
            ))));
        }
        let (writes, guards): (Vec<_>, Vec<_>) = items.into_iter().unzip();
        let mut last = String::new();
        for attempt in 0..RETRIES {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(5 << (attempt - 1))).await;
            }
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(writes.clone()))
                .send()
                .await;
            let Err(e) = result else {
                return Ok(());
            };
            let reasons: Vec<Option<String>> = match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c)) => {
                    c.cancellation_reasons().iter().map(|r| r.code().map(str::to_owned)).collect()
                }
                Some(service) if service.is_transaction_in_progress_exception() => {
                    last = service.to_string();
                    continue;
                }
                _ => return Err(CommitError::Store(sdk_error(e))),
            };
            if let Some(i) = reasons
                .iter()
                .position(|r| r.as_deref() == Some("ConditionalCheckFailed"))
            {
                return Err(match &guards[i] {
                    Guard::Handled => CommitError::AlreadyHandled,
                    Guard::Idempotency => CommitError::IdempotencyKeyTaken,
                    Guard::NewOrder => CommitError::Store(StoreError::AlreadyExists),
                    Guard::OrderVersion(id) => CommitError::VersionConflict(*id),
                    Guard::Stock(product) => match self.stock(product).await? {
                        Some(_) => CommitError::InsufficientStock(product.clone()),
                        None => CommitError::UnknownProduct(product.clone()),
                    },
                    Guard::Document(kind, key) => CommitError::DocumentChanged(*kind, key.clone()),
                    Guard::None => CommitError::Store(StoreError::Corrupt(
                        "an unconditional write failed its condition".into(),
                    )),
                });
            }
            if reasons
                .iter()
                .any(|r| r.as_deref() == Some("TransactionConflict"))
            {
                last = format!("{reasons:?}");
                tracing::debug!(attempt, "transaction conflict; retrying");
                continue;
            }
            return Err(CommitError::Store(StoreError::Unavailable(format!(
                "transaction canceled: {reasons:?}"
            ))));
        }
        Err(CommitError::Store(StoreError::Unavailable(format!(
            "transaction kept conflicting: {last}"
        ))))
    }
}

/// The lane of a job item, from its consumer.
fn job_lane(item: &Item) -> Result<Lane, StoreError> {
    let consumer = text(item, "consumer")?;
    Consumer::parse(&consumer)
        .map(Consumer::lane)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown consumer {consumer:?}")))
}

fn job_from_item(item: &Item) -> Result<Job, StoreError> {
    let consumer = text(item, "consumer")?;
    Ok(Job {
        id: number(item, "job_id")?,
        consumer: Consumer::parse(&consumer)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown consumer {consumer}")))?,
        event: decode(&text(item, "payload")?)?,
        attempts: u32::try_from(number(item, "attempts")?).map_err(unavailable)?,
        last_error: text(item, "last_error").ok(),
        lease: None,
    })
}

#[async_trait]
impl Readiness for DynamoStore {
    /// One read of a key that never exists: the table answers, and the caller's role may use
    /// it. (DynamoDB has no disk of ours to fill.)
    async fn check_ready(&self) -> Result<(), StoreError> {
        self.client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key("READY".to_owned(), "READY")))
            .send()
            .await
            .map(|_| ())
            .map_err(sdk_error)
    }
}

#[async_trait]
impl JobQueue for DynamoStore {
    async fn claim_jobs(
        &self,
        now: Timestamp,
        limit: u32,
        lease_ms: i64,
    ) -> Result<Vec<Job>, StoreError> {
        // Due jobs, and leased ones whose lease ended, sort before `now` in the index.
        let upper = format!("{:020}#~", now.millis());
        let candidates = self.all_jobs(Some(upper), (limit as usize) * 4).await?;
        let mut claimed = Vec::new();
        let mut orders = HashSet::new();
        for item in candidates {
            if claimed.len() >= limit as usize {
                break;
            }
            let (pk, sk, lsk) = (text(&item, "pk")?, text(&item, "sk")?, text(&item, "lsk")?);
            let lane = job_lane(&item)?;
            // A job behind its lane's head may sort before the head (the head is waiting for a
            // retry): it is skipped without taking the head's place in this claim.
            if orders.contains(&(pk.clone(), lane))
                || !self.job_is_head(pk.clone(), &sk, lane).await?
            {
                continue;
            }
            orders.insert((pk.clone(), lane));
            let id = number(&item, "job_id")?;
            let lease_until = now.millis() + lease_ms;
            // The condition makes the claim exclusive: whoever moves the job first wins.
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(pk, &sk)))
                .update_expression("SET lease_until = :lease, lsk = :leased")
                .condition_expression("lsk = :seen")
                .expression_attribute_values(":lease", n(lease_until))
                .expression_attribute_values(":leased", s(job_lsk(lease_until, id)))
                .expression_attribute_values(":seen", s(lsk))
                .send()
                .await;
            match result {
                Ok(_) => claimed.push(Job {
                    lease: Some(Timestamp::from_millis(lease_until)),
                    ..job_from_item(&item)?
                }),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_conditional_check_failed_exception()) => {}
                Err(e) => return Err(sdk_error(e)),
            }
        }
        Ok(claimed)
    }

    async fn retry_job(
        &self,
        job: &Job,
        attempts: u32,
        next_at: Timestamp,
        error: &str,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(order_pk(job.event.order_id), &job_sk(job.id))))
            .update_expression(
                "SET attempts = :attempts, next_at = :next, last_error = :error, lsk = :lsk \
                 REMOVE lease_until",
            )
            .expression_attribute_values(":attempts", n(i64::from(attempts)))
            .expression_attribute_values(":next", n(next_at.millis()))
            .expression_attribute_values(":error", s(error))
            .expression_attribute_values(":lsk", s(job_lsk(next_at.millis(), job.id)));
        let result = match job.lease {
            None => result.condition_expression("attribute_exists(pk)"),
            Some(lease) => result
                .condition_expression("lease_until = :held")
                .expression_attribute_values(":held", n(lease.millis())),
        }
        .send()
        .await;
        // Not done if done meanwhile (the job is gone) or claimed again since: the holder
        // decides.
        conditional(result).map(drop)
    }

    async fn delete_job(&self, job: &Job) -> Result<(), StoreError> {
        let delete = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(order_pk(job.event.order_id), &job_sk(job.id))));
        let delete = match job.lease {
            None => delete,
            Some(lease) => delete
                .condition_expression("lease_until = :held")
                .expression_attribute_values(":held", n(lease.millis())),
        };
        // Not done if claimed again since: the holder decides.
        conditional(delete.send().await).map(drop)
    }

    async fn release_leases(&self) -> Result<u64, StoreError> {
        self.release(None).await
    }

    async fn release_claim(&self, lease: Timestamp) -> Result<u64, StoreError> {
        self.release(Some(lease)).await
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        // The first job in the index that heads its order's lane; others wait behind their head.
        for item in self.all_jobs(None, usize::MAX).await? {
            let (pk, sk) = (text(&item, "pk")?, text(&item, "sk")?);
            if self.job_is_head(pk, &sk, job_lane(&item)?).await? {
                let lsk = text(&item, "lsk")?;
                let due = lsk
                    .split('#')
                    .next()
                    .and_then(|t| t.parse().ok())
                    .ok_or_else(|| StoreError::Corrupt(format!("bad job index key {lsk}")))?;
                return Ok(Some(Timestamp::from_millis(due)));
            }
        }
        Ok(None)
    }

    async fn pending_jobs(&self) -> Result<u64, StoreError> {
        self.count("lists", "lpk = :pk", &[(":pk", s("JOBS"))])
            .await
    }

    async fn waiting_jobs(
        &self,
        order: Option<OrderId>,
        limit: u32,
    ) -> Result<Vec<WaitingJob>, StoreError> {
        // An order's jobs sit in its partition; all of them, in the due index, which holds
        // only what is outstanding (a drained queue is short).
        let items = match order {
            Some(id) => self.partition(order_pk(id), "JOB#", true, None).await?,
            None => self.all_jobs(None, usize::MAX).await?,
        };
        let mut waiting = Vec::new();
        for item in items {
            if number(&item, "attempts")? == 0 {
                continue;
            }
            waiting.push(WaitingJob {
                job: job_from_item(&item)?,
                due: Timestamp::from_millis(number(&item, "next_at")?),
                running: item.contains_key("lease_until"),
            });
        }
        waiting.sort_by_key(|w| (w.due, w.job.id));
        waiting.truncate(limit as usize);
        Ok(waiting)
    }

    async fn hurry_job(
        &self,
        order: OrderId,
        job_id: i64,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(order_pk(order), &job_sk(job_id))))
            .update_expression("SET next_at = :now, lsk = :lsk REMOVE lease_until")
            .condition_expression(
                "attempts > :zero AND (attribute_not_exists(lease_until) OR lease_until <= :now)",
            )
            .expression_attribute_values(":now", n(now.millis()))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":lsk", s(job_lsk(now.millis(), job_id)))
            .send()
            .await;
        conditional(result)
    }
}
