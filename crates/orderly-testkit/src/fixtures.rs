//! Builders for test data: the reference catalog by default, any field overridable.

use orderly_core::orders::holds_stock;
use orderly_core::ports::{Commit, Consumer, OrderWrite, Outgoing};
use orderly_domain::{
    Actor, Address, Currency, Customer, CustomerId, Email, EventId, Money, Name, NewOrder, Order,
    OrderId, OrderLine, Prices, Product, ProductId, Quantity, Stamp, Timestamp,
};
use uuid::Uuid;

/// Text in four scripts and emoji, including a ZWJ sequence: what must come back byte-exact.
pub const UNICODE_SAMPLES: [&str; 4] = [
    "東京都渋谷区 🏠",
    "شارع الملك فهد",
    "Zürich",
    "👩\u{200d}👩\u{200d}👧",
];

/// A timestamp n milliseconds into a fixed day.
#[must_use]
pub fn at(n: i64) -> Timestamp {
    Timestamp::from_millis(1_795_000_000_000 + n)
}

/// A stamp for changes made in tests.
#[must_use]
pub fn stamp() -> Stamp {
    Stamp {
        event_id: EventId::from_uuid(Uuid::now_v7()),
        at: at(0),
        actor: Actor::api(),
    }
}

/// A product priced in USD.
#[must_use]
pub fn product(id: &str, name: &str, usd: &str) -> Product {
    Product {
        id: ProductId::parse(id).unwrap(),
        name: Name::parse("name", name).unwrap(),
        prices: Prices::new(vec![Money::parse(usd, Currency::USD).unwrap()]).unwrap(),
        active: true,
        version: 1,
        created_at: at(0),
        updated_at: at(0),
    }
}

/// A customer.
#[must_use]
pub fn customer(id: &str, name: &str) -> Customer {
    Customer {
        id: CustomerId::parse(id).unwrap(),
        email: Email::parse(&format!("c{id}@example.com")).unwrap(),
        name: Name::parse("name", name).unwrap(),
        created_at: at(0),
    }
}

/// An address whose every line is `text`.
#[must_use]
pub fn address(text: &str) -> Address {
    Address {
        name: text.to_owned(),
        line1: text.to_owned(),
        line2: Some(text.to_owned()),
        city: text.to_owned(),
        region: Some(text.to_owned()),
        postal_code: Some("150-0002".to_owned()),
        country: "JP".to_owned(),
    }
}

/// A placed order for `customer` with one line per `(product, quantity)` at 10.00 USD each.
#[must_use]
pub fn order(customer: &str, lines: &[(&str, u32)]) -> Order {
    let unit = Money::parse("10.00", Currency::USD).unwrap();
    let lines = lines
        .iter()
        .map(|(p, q)| OrderLine {
            product_id: ProductId::parse(p).unwrap(),
            name: Name::parse("name", &format!("Product {p}")).unwrap(),
            quantity: Quantity::new(i64::from(*q)).unwrap(),
            unit_price: unit,
            line_total: unit.checked_mul(*q).unwrap(),
        })
        .collect();
    let new = NewOrder {
        id: OrderId::from_uuid(Uuid::now_v7()),
        customer_id: CustomerId::parse(customer).unwrap(),
        currency: Currency::USD,
        lines,
        shipping_address: None,
        exchange_rate: None,
        payment_method: None,
    };
    Order::place(new, stamp()).unwrap().0
}

/// The commit that places `order`, queueing an inventory job.
#[must_use]
pub fn place(order: &Order) -> Commit {
    let event = orderly_domain::Event::about(
        order,
        orderly_domain::EventKind::OrderPlaced,
        &stamp(),
        None,
    );
    Commit {
        order: Some(OrderWrite::Insert(order.clone())),
        events: vec![Outgoing {
            event,
            consumers: vec![Consumer::Inventory],
        }],
        ..Commit::default()
    }
}

/// True if the order's status holds stock (re-exported for assertions).
#[must_use]
pub fn holds(order: &Order) -> bool {
    holds_stock(order.status)
}
