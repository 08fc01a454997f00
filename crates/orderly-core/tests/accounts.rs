//! Accounts over the in-memory store, with a clock the tests move: sessions, refresh rotation,
//! keys, limits, and nodes that share one store.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use orderly_auth::{Permission, Principal, Role};
use orderly_core::accounts::{Accounts, AuthSettings};
use orderly_core::memory::MemoryStore;
use orderly_core::ports::{Clock, Store};
use orderly_core::{AppError, Application};
use orderly_domain::Timestamp;

struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::SeqCst))
    }
}

impl TestClock {
    fn advance_secs(&self, secs: i64) {
        self.0.fetch_add(secs * 1000, Ordering::SeqCst);
    }
}

async fn accounts_on(store: &Arc<dyn Store>, clock: &Arc<TestClock>) -> Accounts {
    Application::new(Arc::clone(store))
        .with_clock(Arc::clone(clock) as Arc<dyn Clock>)
        .accounts(AuthSettings::default(), None)
        .await
        .unwrap()
}

fn setup() -> (Arc<dyn Store>, Arc<TestClock>) {
    (
        Arc::new(MemoryStore::new()),
        Arc::new(TestClock(AtomicI64::new(1_795_000_000_000))),
    )
}

const PASSWORD: &str = "correct horse battery";

#[tokio::test]
async fn a_token_issued_by_one_node_is_accepted_by_another_on_the_same_store() {
    let (store, clock) = setup();
    let first = accounts_on(&store, &clock).await;
    let second = accounts_on(&store, &clock).await;
    let (profile, tokens) = first
        .register("Ana@Example.com", PASSWORD, "Ana", None, "test")
        .await
        .unwrap();
    assert_eq!(profile.email, "ana@example.com");
    let principal = second.authenticate(&tokens.access_token).await.unwrap();
    assert_eq!(principal.customer_id(), Some(&profile.customer_id));
}

#[tokio::test]
async fn access_tokens_expire_and_refreshing_gives_new_ones() {
    let (store, clock) = setup();
    let accounts = accounts_on(&store, &clock).await;
    let (_, tokens) = accounts
        .register("bo@example.com", PASSWORD, "Bo", None, "test")
        .await
        .unwrap();
    clock.advance_secs(15 * 60 + 31);
    let expired = accounts.authenticate(&tokens.access_token).await;
    assert!(
        matches!(&expired, Err(AppError::Unauthenticated(m)) if m.contains("expired")),
        "{expired:?}"
    );
    let fresh = accounts.refresh(&tokens.refresh_token).await.unwrap();
    assert!(accounts.authenticate(&fresh.access_token).await.is_ok());
    // After the session's lifetime, refreshing ends.
    clock.advance_secs(31 * 24 * 3600);
    assert!(accounts.refresh(&fresh.refresh_token).await.is_err());
}

#[tokio::test]
async fn of_two_concurrent_refreshes_of_one_token_only_one_succeeds() {
    let (store, clock) = setup();
    let accounts = Arc::new(accounts_on(&store, &clock).await);
    let (_, tokens) = accounts
        .register("cy@example.com", PASSWORD, "Cy", None, "test")
        .await
        .unwrap();
    let (a, b) = tokio::join!(
        accounts.refresh(&tokens.refresh_token),
        accounts.refresh(&tokens.refresh_token)
    );
    assert_eq!(
        usize::from(a.is_ok()) + usize::from(b.is_ok()),
        1,
        "{a:?} {b:?}"
    );
}

#[tokio::test]
async fn a_disabled_user_cannot_log_in_or_refresh_and_a_new_role_arrives_on_refresh() {
    let (store, clock) = setup();
    let accounts = accounts_on(&store, &clock).await;
    accounts
        .create_staff("dee@shop.example", "Dee", Role::Support, PASSWORD, "test")
        .await
        .unwrap();
    let tokens = accounts
        .login_staff("dee@shop.example", PASSWORD, "test")
        .await
        .unwrap();
    accounts
        .update_staff("dee@shop.example", Some(Role::Manager), None)
        .await
        .unwrap();
    let promoted = accounts.refresh(&tokens.refresh_token).await.unwrap();
    let principal = accounts.authenticate(&promoted.access_token).await.unwrap();
    assert!(principal.can(Permission::OrdersCancel));
    accounts
        .update_staff("dee@shop.example", None, Some(true))
        .await
        .unwrap();
    assert!(accounts.refresh(&promoted.refresh_token).await.is_err());
    assert!(
        accounts
            .login_staff("dee@shop.example", PASSWORD, "test")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn failed_log_ins_lock_the_account_for_the_window_but_not_others() {
    let (store, clock) = setup();
    let accounts = accounts_on(&store, &clock).await;
    for email in ["eve@example.com", "fay@example.com"] {
        accounts
            .register(email, PASSWORD, "Someone", None, "test")
            .await
            .unwrap();
    }
    for _ in 0..5 {
        let r = accounts
            .login_customer("eve@example.com", "wrong", "198.51.100.1")
            .await;
        assert!(matches!(r, Err(AppError::Unauthenticated(_))), "{r:?}");
    }
    let locked = accounts
        .login_customer("eve@example.com", PASSWORD, "198.51.100.2")
        .await;
    assert!(
        matches!(locked, Err(AppError::RateLimited { retry_after_ms, .. }) if retry_after_ms > 0)
    );
    assert!(
        accounts
            .login_customer("fay@example.com", PASSWORD, "198.51.100.1")
            .await
            .is_ok()
    );
    clock.advance_secs(15 * 60);
    assert!(
        accounts
            .login_customer("eve@example.com", PASSWORD, "198.51.100.2")
            .await
            .is_ok()
    );
    // An unknown e-mail answers exactly like a wrong password.
    let unknown = accounts
        .login_customer("nobody@example.com", "whatever", "198.51.100.3")
        .await;
    assert_eq!(
        unknown.unwrap_err(),
        AppError::Unauthenticated("wrong e-mail or password".into())
    );
}

#[tokio::test]
async fn an_api_key_names_its_scopes_until_it_is_revoked() {
    let (store, clock) = setup();
    let accounts = accounts_on(&store, &clock).await;
    let (record, key) = accounts
        .create_key("warehouse", &[Permission::OrdersFulfil], "test")
        .await
        .unwrap();
    match accounts.authenticate(&key).await.unwrap() {
        Principal::Service { scopes, .. } => assert_eq!(scopes, [Permission::OrdersFulfil]),
        other => panic!("{other:?}"),
    }
    // A key with one character changed is refused, even though its id is right.
    let mut forged = key.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert!(accounts.authenticate(&forged).await.is_err());
    accounts.revoke_key(&record.id).await.unwrap();
    assert!(accounts.authenticate(&key).await.is_err());
    // Keys never hold the rights to make people or keys.
    assert!(
        accounts
            .create_key("root", &[Permission::UsersManage], "test")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn an_email_has_one_account() {
    let (store, clock) = setup();
    let accounts = accounts_on(&store, &clock).await;
    accounts
        .register("gus@example.com", PASSWORD, "Gus", None, "test")
        .await
        .unwrap();
    let again = accounts
        .register("GUS@example.com", PASSWORD, "Gus Again", None, "test")
        .await;
    assert!(
        matches!(again, Err(AppError::AlreadyExists { .. })),
        "{again:?}"
    );
    let weak = accounts
        .register("hal@example.com", "short", "Hal", None, "test")
        .await;
    assert!(matches!(weak, Err(AppError::Invalid(_))), "{weak:?}");
}
