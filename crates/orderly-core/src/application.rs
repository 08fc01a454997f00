//! The composition root: every use case wired from one store and the adapters an entry point
//! brings. `orderly serve`, every Lambda function, the bench and the tests build through
//! [`Application`]; it is the one place the [`Store`] union of all storage ports is split into
//! the narrow ports each capability uses.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use orderly_auth::ExternalVerifier;
use orderly_domain::Currency;
use tokio::sync::Notify;

use crate::accounts::{Accounts, AuthSettings};
use crate::carts::Carts;
use crate::catalog::{Catalog, Pricing};
use crate::commits::Changes;
use crate::error::AppError;
use crate::notify::{MessagePreferences, Notifications, NotifyPorts, NotifySettings, Templates};
use crate::orders::Orders;
use crate::ports::{
    Clock, IdGenerator, JobQueue, Notifier, PaymentGateway, Readiness, Store, SystemClock, UuidV7,
};
use crate::retry::{RetryPolicies, RetryPolicy};
use crate::saga::{Dispatcher, DispatcherSettings, Saga, SagaPorts};
use crate::search_index::{IndexedCatalog, SearchIndex};
use crate::support::Support;

/// Settings the use cases need.
#[derive(Clone, Debug)]
pub struct AppSettings {
    /// The currency orders are priced in when the request names none.
    pub base_currency: Currency,
    /// A cart expires this long after the shopper last changed it.
    pub cart_idle: std::time::Duration,
    /// How much of one order a role without `orders:refund-any` may refund.
    pub refund_limits: crate::orders::refunds::RefundLimits,
}

/// Default idle time before a cart expires: a week.
pub const CART_IDLE: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

impl Default for AppSettings {
    fn default() -> Self {
        AppSettings {
            base_currency: Currency::USD,
            cart_idle: CART_IDLE,
            refund_limits: crate::orders::refunds::RefundLimits::default_for(Currency::USD),
        }
    }
}

/// The use cases the API serves, by capability: [`Services`] behind one `Arc`, so the API
/// clones one pointer per request, not every service's ports.
#[derive(Clone)]
pub struct Orderly(Arc<Services>);

impl std::ops::Deref for Orderly {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The services of [`Orderly`].
pub struct Services {
    /// Orders: place, read, list, cancel, ship, deliver.
    pub orders: Orders,
    /// Products, customers, stock and exchange rates.
    pub catalog: Catalog,
    /// Carts and checkout.
    pub carts: Carts,
    /// Staff work on orders: notes, address corrections, retries, the needs-attention queue.
    pub support: Support,
    /// Customers' message preferences.
    pub preferences: MessagePreferences,
    readiness: Arc<dyn Readiness>,
    jobs: Arc<dyn JobQueue>,
    settings: AppSettings,
}

impl Services {
    /// Whether the store can serve (for `/readyz`).
    #[must_use]
    pub fn readiness(&self) -> &Arc<dyn Readiness> {
        &self.readiness
    }

    /// The saga's queue (for `/readyz`'s count of waiting jobs).
    #[must_use]
    pub fn jobs(&self) -> &Arc<dyn JobQueue> {
        &self.jobs
    }

    /// The settings.
    #[must_use]
    pub fn settings(&self) -> &AppSettings {
        &self.settings
    }
}

/// What a notifier needs besides the store: the channel, the templates and the shop's names.
struct NotifierParts {
    notifier: Arc<dyn Notifier>,
    templates: Arc<dyn Templates>,
    settings: NotifySettings,
}

/// Wires every use case from one store and the adapters of an entry point. Each entry point
/// asks for what it runs: the use cases, the accounts, the saga, its dispatcher, the notifier.
pub struct Application {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    settings: AppSettings,
    work: Arc<Notify>,
    retry: RetryPolicies,
    lease: Duration,
    payment_timeout: Duration,
    notifier: Option<NotifierParts>,
    notifications: OnceLock<Option<Arc<Notifications>>>,
}

impl Application {
    /// Everything on `store`, with the system clock, time-ordered ids, the default settings
    /// and the reference retry policy until told otherwise.
    #[must_use]
    pub fn new(store: Arc<dyn Store>) -> Self {
        Application {
            store,
            clock: Arc::new(SystemClock),
            ids: Arc::new(UuidV7),
            settings: AppSettings::default(),
            work: Arc::new(Notify::new()),
            retry: RetryPolicies::default(),
            lease: Duration::from_secs(60),
            payment_timeout: Duration::from_secs(30),
            notifier: None,
            notifications: OnceLock::new(),
        }
    }

    /// Another clock (a test's manual one).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Another id generator.
    #[must_use]
    pub fn with_ids(mut self, ids: Arc<dyn IdGenerator>) -> Self {
        self.ids = ids;
        self
    }

    /// The shop's base currency and cart lifetime.
    #[must_use]
    pub fn with_settings(mut self, settings: AppSettings) -> Self {
        self.settings = settings;
        self
    }

    /// The saga's fast retries, keeping each failure class's longer waits.
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry.fast = retry;
        self
    }

    /// Stage 1 whole: the fast retries and each failure class's waits.
    #[must_use]
    pub fn with_retry_policies(mut self, policies: RetryPolicies) -> Self {
        self.retry = policies;
        self
    }

    /// The job lease of the saga's queue (default 60 s).
    #[must_use]
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How long a payment call may take (default 30 s); keep it below the lease.
    #[must_use]
    pub fn with_payment_timeout(mut self, timeout: Duration) -> Self {
        self.payment_timeout = timeout;
        self
    }

    /// Messages go out through `notifier`, rendered by `templates`.
    #[must_use]
    pub fn with_notifier(
        mut self,
        notifier: Arc<dyn Notifier>,
        templates: Arc<dyn Templates>,
        settings: NotifySettings,
    ) -> Self {
        self.notifier = Some(NotifierParts {
            notifier,
            templates,
            settings,
        });
        self.notifications = OnceLock::new();
        self
    }

    /// The store everything is built on (for what an entry point does with the database
    /// itself: releasing a dead process's leases, seeding).
    #[must_use]
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Signalled whenever a commit queues saga work; the dispatcher waits on it.
    #[must_use]
    pub fn work(&self) -> Arc<Notify> {
        Arc::clone(&self.work)
    }

    /// The clock in use.
    #[must_use]
    pub fn clock(&self) -> Arc<dyn Clock> {
        Arc::clone(&self.clock)
    }

    fn changes(&self) -> Changes {
        Changes::new(
            self.store.clone(),
            Arc::clone(&self.clock),
            Arc::clone(&self.ids),
            Arc::clone(&self.work),
        )
    }

    /// The search index over the store.
    fn search_index(&self) -> SearchIndex {
        SearchIndex::new(self.store.clone(), self.store.clone())
    }

    /// The catalog port every use case gets: the store's, indexing each new customer for the
    /// staff's search.
    fn catalog_port(&self) -> Arc<dyn crate::ports::CatalogStore> {
        Arc::new(IndexedCatalog::new(self.store.clone(), self.search_index()))
    }

    fn pricing(&self) -> Pricing {
        Pricing::new(self.store.clone(), self.settings.base_currency)
    }

    /// The use cases.
    #[must_use]
    pub fn orderly(&self) -> Orderly {
        let store = &self.store;
        let changes = self.changes();
        let orders = Orders::new(
            store.clone(),
            store.clone(),
            self.pricing(),
            changes.clone(),
            store.clone(),
            self.settings.refund_limits.clone(),
        );
        let catalog = self.catalog_port();
        Orderly(Arc::new(Services {
            catalog: Catalog::new(
                catalog.clone(),
                store.clone(),
                changes.clone(),
                self.pricing(),
            ),
            carts: Carts::new(
                store.clone(),
                catalog.clone(),
                store.clone(),
                self.pricing(),
                orders.clone(),
                Arc::clone(&self.clock),
                self.settings.cart_idle,
            ),
            support: Support::new(
                orders.clone(),
                changes,
                store.clone(),
                store.clone(),
                (catalog.clone(), self.search_index()),
            ),
            preferences: MessagePreferences::new(store.clone(), catalog, self.search_index()),
            orders,
            readiness: store.clone(),
            jobs: store.clone(),
            settings: self.settings.clone(),
        }))
    }

    /// Accounts and access, signing with the store's shared secret (made on first start).
    ///
    /// # Errors
    /// [`AppError::Unavailable`] if the store cannot be read.
    pub async fn accounts(
        &self,
        settings: AuthSettings,
        external: Option<Arc<dyn ExternalVerifier>>,
    ) -> Result<Accounts, AppError> {
        Accounts::open(
            self.store.clone(),
            self.catalog_port(),
            Arc::clone(&self.clock),
            settings,
            external,
        )
        .await
    }

    /// The notifications, if a notifier was given; one instance however often asked.
    #[must_use]
    pub fn notifications(&self) -> Option<Arc<Notifications>> {
        self.notifications
            .get_or_init(|| {
                self.notifier.as_ref().map(|parts| {
                    let store = &self.store;
                    Arc::new(Notifications::new(
                        NotifyPorts {
                            orders: store.clone(),
                            customers: store.clone(),
                            commits: store.clone(),
                            jobs: store.clone(),
                            documents: store.clone(),
                        },
                        Arc::clone(&parts.notifier),
                        Arc::clone(&parts.templates),
                        Arc::clone(&self.clock),
                        parts.settings.clone(),
                    ))
                })
            })
            .clone()
    }

    /// The saga's consumers, charging through `payments`, and running notify jobs if a
    /// notifier was given.
    #[must_use]
    pub fn saga(&self, payments: Arc<dyn PaymentGateway>) -> Saga {
        let store = &self.store;
        let saga = Saga::new(
            SagaPorts {
                orders: store.clone(),
                commits: store.clone(),
                jobs: store.clone(),
                documents: store.clone(),
            },
            payments,
            Arc::clone(&self.clock),
            Arc::clone(&self.ids),
            self.retry.clone(),
        )
        .with_lease(self.lease)
        .with_payment_timeout(self.payment_timeout);
        match self.notifications() {
            Some(n) => saga.with_notifications(n),
            None => saga,
        }
    }

    /// The dispatcher that runs `saga`'s queued jobs, woken by [`Application::work`].
    #[must_use]
    pub fn dispatcher(&self, saga: Arc<Saga>, settings: DispatcherSettings) -> Dispatcher {
        Dispatcher::new(
            saga,
            DispatcherSettings {
                lease: self.lease,
                ..settings
            },
            self.work(),
        )
    }
}
