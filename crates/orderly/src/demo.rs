//! `orderly serve --demo-failures`: orders that need a person, one per failure class the staff
//! panel resolves, placed through the same use cases as any other order and failing the way
//! real ones do — the simulated provider's test payment methods, a carrier's report.

use std::time::Duration;

use orderly_auth::{Permission, Principal};
use orderly_core::Orderly;
use orderly_core::access::{Fulfil, Policy};
use orderly_core::accounts::Accounts;
use orderly_core::orders::{LineRequest, PlaceOrder, Placed};
use orderly_domain::{Address, CustomerId, Order, OrderStatus, ProductId, Quantity};

/// Who places and reports the demo's cases, as order histories name them: `key:demo-failures`.
fn demo_principal() -> Principal {
    Principal::Service {
        key_id: "demo-failures".to_owned(),
        name: "demo failures".to_owned(),
        scopes: vec![Permission::OrdersPlace, Permission::OrdersFulfil],
    }
}

fn address(name: &str, line1: &str, city: &str, postal: &str, country: &str) -> Address {
    Address {
        name: name.to_owned(),
        line1: line1.to_owned(),
        line2: None,
        city: city.to_owned(),
        region: None,
        postal_code: Some(postal.to_owned()),
        country: country.to_owned(),
    }
}

async fn place(
    app: &Orderly,
    accounts: &Accounts,
    customer: &str,
    product: &str,
    shipping: Address,
    payment_method: Option<String>,
) -> Result<Order, String> {
    let principal = demo_principal();
    let policy = Policy::new(&principal, "demo");
    let customer_id = CustomerId::parse(customer).map_err(|e| e.to_string())?;
    let permit = policy
        .place_for(accounts, &customer_id)
        .map_err(|e| e.to_string())?;
    let request = PlaceOrder {
        customer_id,
        items: vec![LineRequest {
            product_id: ProductId::parse(product).map_err(|e| e.to_string())?,
            quantity: Quantity::new(1).map_err(|e| e.to_string())?,
        }],
        currency: None,
        shipping_address: Some(shipping),
        payment_method,
    };
    match app.orders.place_order(permit, request, None).await {
        Ok(Placed::New(order) | Placed::Replay(order)) => Ok(order),
        Err(e) => Err(format!("cannot place a demo order: {e}")),
    }
}

/// Places the demo's failing orders and returns at once; the cases reach the queue as the
/// saga works through them (`calls_before_giving_up`: how many payment calls the automatic
/// retries make, so the outage ends just after them and a retry from the panel pays).
///
/// # Errors
/// An order that could not be placed.
pub(crate) async fn seed_failures(
    app: &Orderly,
    accounts: &Accounts,
    calls_before_giving_up: u32,
) -> Result<(), String> {
    // The payment provider is down for longer than the automatic retries.
    place(
        app,
        accounts,
        "002",
        "001",
        address(
            "Zoé Ñúñez 🌻",
            "Rua das Flores 12",
            "Lisboa",
            "1200-195",
            "PT",
        ),
        Some(format!("sim_unavailable_{calls_before_giving_up}")),
    )
    .await?;
    // The card is declined: stage 1 tries it again in ten minutes (the stock held), then the
    // order is rejected and the customer told.
    place(
        app,
        accounts,
        "001",
        "002",
        address("Jan Novák", "Karlova 5", "Praha", "110 00", "CZ"),
        Some("sim_declined".to_owned()),
    )
    .await?;
    // The carrier cannot deliver: reported once the order is paid.
    let undeliverable = place(
        app,
        accounts,
        "001",
        "001",
        address(
            "山田 太郎",
            "渋谷区神南 99-99 🏠",
            "東京都",
            "150-0041",
            "JP",
        ),
        None,
    )
    .await?;
    let app = app.clone();
    tokio::spawn(async move {
        if let Err(e) = report_when_paid(&app, undeliverable.id).await {
            tracing::warn!(error = %e, "the demo's undeliverable address was not reported");
        }
    });
    Ok(())
}

async fn report_when_paid(app: &Orderly, id: orderly_domain::OrderId) -> Result<(), String> {
    let principal = demo_principal();
    let policy = Policy::new(&principal, "demo");
    for _ in 0..600 {
        let permit = policy
            .order::<Fulfil>(&app.orders, &id.to_string())
            .await
            .map_err(|e| e.to_string())?;
        match permit.order().status {
            OrderStatus::Paid => {
                app.support
                    .report_undeliverable(
                        permit,
                        "the carrier has no number 99-99 in 渋谷区神南; ask the customer for the right one",
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                return Ok(());
            }
            OrderStatus::Placed | OrderStatus::Reserved => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return Err(format!("the order is {other}, not paid")),
        }
    }
    Err("the order was not paid within a minute".into())
}
