//! The OpenAPI document's paths and rules: the operations of the route table, what the table
//! knows about every route, and the schemas of the values requests must hold.
//!
//! # Layout
//! - [`RouteRules`]: the [`Modify`] [`crate::ApiDoc`] runs. It puts in the document the
//!   operation of every route of [`crate::route_table`] — the table the router is built from;
//!   a route's operation is its handler's `#[utoipa::path]`, or [`graphql_operation`] and
//!   [`graphiql_operation`] for `/graphql` — with the schemas it names. It gives every operation
//!   its security requirement and the answers every route of its kind can give (401, 403,
//!   400/408/413/415/422 for a JSON body, 400/422 for a query string, 429 where a rate limit
//!   applies, 503), so no handler repeats them. A handler lists only its own answers (404, 409,
//!   502, a 422 that says more), each saying what it means, without a body: every error answer
//!   gets the `Problem` body here. [`NotFound`] is the `404` of a route whose path names
//!   something.
//! - Rule schemas ([`MerchantId`], [`CurrencyCode`], [`AddressLine`], …): the checks of
//!   `orderly-domain` and `orderly-core` written as JSON Schema, built from the same constants.
//!   Wire types name them with `#[schema(value_type = …)]`; the tests below hold each pattern
//!   against the parsing code it describes.

use std::borrow::Cow;

use axum::http::Method;
use orderly_auth::{Permission, Role};
use orderly_core::accounts::{AUDIT_PAGE_LIMITS, DEFAULT_AUDIT_PAGE_LIMIT, MAX_KEY_NAME};
use orderly_core::catalog::MAX_STOCK;
use orderly_core::notify::{MAX_KEY, Preferences};
use orderly_core::orders::placing::MAX_IDEMPOTENCY_KEY;
use orderly_core::orders::{MAX_REASON, MAX_SHIPMENT_TEXT};
use orderly_core::paging::{DEFAULT_PAGE_LIMIT, PAGE_LIMITS};
use orderly_core::support::MAX_NOTE;
use orderly_domain::fx::{MAX_RATE_UNITS, RATE_DECIMALS};
use orderly_domain::ids::{MAX_EMAIL_BYTES, MAX_ID_LEN, QUANTITY_RANGE};
use orderly_domain::{Address, Currency, Name, OrderStatus};
use serde_json::{Value, json};
use utoipa::openapi::path::{Operation, OperationBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat,
    SchemaType, Type,
};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    Components, Content, ContentBuilder, OpenApi, Ref, RefOr, Response, ResponseBuilder, Schema,
    header::HeaderBuilder,
};
use utoipa::{Modify, PartialSchema, ToResponse, ToSchema};

use crate::RouteSpec;
use crate::auth::Access;
use crate::problem::PROBLEM_JSON;

/// The security scheme of access tokens (`POST /v1/auth/login`, `POST /v1/auth/staff/login`).
pub const ACCESS_TOKEN: &str = "accessToken";
/// The security scheme of API keys (`orderly api-key create`, `POST /v1/api-keys`).
pub const API_KEY: &str = "apiKey";

/// Routes with a rate limit, by method and path. The limits are applied by the use cases these
/// handlers call (`Accounts::count_order`, the log-in checks); a test holds every entry to a
/// route of the table.
const RATE_LIMITED: &[(&str, &str)] = &[
    ("POST", "/v1/auth/login"),
    ("POST", "/v1/auth/staff/login"),
    ("POST", "/v1/orders"),
    ("POST", "/v1/carts/{id}/checkout"),
];

/// Seconds a `503` asks the client to wait before retrying (`Retry-After`).
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 1;

/// Adds the routes of [`crate::route_table`] — the table the router is built from — to the
/// document [`crate::ApiDoc`] derives, with what the table knows of each.
pub struct RouteRules;

impl Modify for RouteRules {
    fn modify(&self, doc: &mut OpenApi) {
        apply(doc, &crate::route_table());
    }
}

/// Adds the operation of every route of `routes` that has one to `doc`, with the schemas it
/// names; gives each its security requirement, the answers its kind of route can give, a
/// problem body for each of its own error answers and a sentence saying who may call it.
pub fn apply(doc: &mut OpenApi, routes: &[RouteSpec]) {
    let components = doc.components.get_or_insert_with(Components::new);
    components.security_schemes.extend(security_schemes());
    // Parameters' schemas are not collected from the handlers as bodies' are.
    components.schemas.extend(
        rule_schemas()
            .into_iter()
            .map(|(name, schema)| (name.into_owned(), schema)),
    );
    components.responses.extend(
        common_responses()
            .into_iter()
            .map(|(name, response)| (name.to_owned(), RefOr::T(response))),
    );
    for own in routes.iter().filter_map(|route| route.openapi.as_ref()) {
        components.schemas.extend(own.schemas.iter().cloned());
        doc.paths.merge(own.paths.clone());
    }
    for route in routes {
        let Some(operation) = operation_mut(doc, &route.method, &route.path) else {
            continue;
        };
        operation.security = Some(security(route.access));
        let access = who_may_call(route.access);
        operation.description = Some(match operation.description.take() {
            Some(text) if !text.is_empty() => format!("{text}\n\n{access}"),
            _ => access,
        });
        // Every error is a problem: a handler names its own errors and says what they mean.
        for (status, response) in &mut operation.responses.responses {
            if let RefOr::T(response) = response
                && is_error(status)
                && response.content.is_empty()
            {
                response
                    .content
                    .insert(PROBLEM_JSON.to_owned(), problem_content());
            }
        }
        let limited = RATE_LIMITED
            .iter()
            .any(|&(m, p)| m == route.method.as_str() && p == route.path);
        for (status, name) in common_answers(operation, route.access, limited) {
            operation
                .responses
                .responses
                .entry(status.to_owned())
                .or_insert_with(|| Ref::from_response_name(name).into());
        }
    }
}

/// True for a `4xx` or `5xx` status.
fn is_error(status: &str) -> bool {
    status.starts_with('4') || status.starts_with('5')
}

/// The operation for `method` at `path`, if the document has one.
pub fn operation_mut<'a>(
    doc: &'a mut OpenApi,
    method: &Method,
    path: &str,
) -> Option<&'a mut Operation> {
    let item = doc.paths.paths.get_mut(path)?;
    match *method {
        Method::GET => item.get.as_mut(),
        Method::POST => item.post.as_mut(),
        Method::PUT => item.put.as_mut(),
        Method::PATCH => item.patch.as_mut(),
        Method::DELETE => item.delete.as_mut(),
        _ => None,
    }
}

fn security_schemes() -> Vec<(String, SecurityScheme)> {
    let mut token = Http::new(HttpAuthScheme::Bearer);
    token.bearer_format = Some("JWT".to_owned());
    token.description = Some(
        "An access token (HS256 JWT, 15 minutes) from `POST /v1/auth/login` (customers) or \
         `POST /v1/auth/staff/login` (staff), sent as `Authorization: Bearer <token>`. Renew it \
         at `POST /v1/auth/refresh`. Where configured, a token of the external identity \
         provider (Cognito) counts as one too."
            .to_owned(),
    );
    let mut key = Http::new(HttpAuthScheme::Bearer);
    key.bearer_format = Some("oak_<id>_<secret>".to_owned());
    key.description = Some(
        "An API key (`oak_…`) from `orderly api-key create` or `POST /v1/api-keys`, sent the \
         same way: `Authorization: Bearer <key>`. It holds scopes, which are permission names; \
         `users:manage` and `keys:manage` stay with people."
            .to_owned(),
    );
    vec![
        (ACCESS_TOKEN.to_owned(), SecurityScheme::Http(token)),
        (API_KEY.to_owned(), SecurityScheme::Http(key)),
    ]
}

/// The alternatives that satisfy `access`; none for public routes.
fn security(access: Access) -> Vec<SecurityRequirement> {
    if access.anonymous {
        return Vec::new();
    }
    let mut alternatives = Vec::new();
    let scopes = |p: Option<Permission>| p.map(|p| p.as_str().to_owned()).into_iter();
    if let Some(p) = access.permission
        && p.grantable_to_keys()
    {
        alternatives.push(SecurityRequirement::new(API_KEY, scopes(Some(p))));
    }
    // A customer's token needs no permission; staff tokens need the route's.
    let token_scopes = if access.customers {
        None
    } else {
        access.permission
    };
    if access.customers || access.permission.is_some() {
        alternatives.push(SecurityRequirement::new(ACCESS_TOKEN, scopes(token_scopes)));
    }
    alternatives
}

fn who_may_call(access: Access) -> String {
    if access.anonymous {
        return "Access: public. No credentials are needed; credentials that are sent must \
                be valid (a broken one is a `401`)."
            .to_owned();
    }
    match (access.customers, access.permission) {
        (true, None) => "Access: signed-in customers (an access token from \
                         `POST /v1/auth/login`)."
            .to_owned(),
        (true, Some(p)) => format!(
            "Access: customers, for what is theirs (someone else's is a `404`); staff whose \
             role grants `{p}` and API keys holding it, for anything."
        ),
        (false, Some(p)) if p.grantable_to_keys() => {
            format!("Access: staff whose role grants `{p}`, and API keys holding it.")
        }
        (false, Some(p)) => {
            format!("Access: staff whose role grants `{p}` (API keys cannot hold it).")
        }
        (false, None) => "Access: nobody.".to_owned(),
    }
}

/// `(status, response component)` of the answers every route like `operation` can give.
fn common_answers(
    operation: &Operation,
    access: Access,
    rate_limited: bool,
) -> Vec<(&'static str, &'static str)> {
    let parameters = operation.parameters.as_deref().unwrap_or_default();
    let query: Vec<_> = parameters
        .iter()
        .filter(|p| p.parameter_in == ParameterIn::Query)
        .collect();
    let has_path_parameters = parameters
        .iter()
        .any(|p| p.parameter_in == ParameterIn::Path);
    let has_body = operation.request_body.is_some();
    // A query value that parses but breaks a stated rule is a 422; one that does not parse, 400.
    let query_rules = query
        .iter()
        .any(|p| p.schema.as_ref().is_some_and(has_rules));

    let mut answers = vec![("401", UNAUTHENTICATED), ("503", UNAVAILABLE)];
    if !access.anonymous {
        answers.push(("403", FORBIDDEN));
    }
    if has_body || !query.is_empty() || has_path_parameters {
        answers.push(("400", BAD_REQUEST));
    }
    if has_body {
        answers.extend([
            ("408", REQUEST_TIMEOUT),
            ("413", PAYLOAD_TOO_LARGE),
            ("415", UNSUPPORTED_MEDIA_TYPE),
            ("422", INVALID),
        ]);
    } else if query_rules {
        answers.push(("422", INVALID));
    }
    if rate_limited {
        answers.push(("429", RATE_LIMITED_RESPONSE));
    }
    answers
}

/// True if `schema` states a rule beyond its type (a reference is to a rule schema).
fn has_rules(schema: &RefOr<Schema>) -> bool {
    match schema {
        RefOr::Ref(_) => true,
        RefOr::T(Schema::Object(o)) => {
            o.minimum.is_some()
                || o.maximum.is_some()
                || o.pattern.is_some()
                || o.enum_values.is_some()
                || o.min_length.is_some()
                || o.max_length.is_some()
                || o.format.is_some()
        }
        RefOr::T(Schema::OneOf(o)) => o.items.iter().any(has_rules),
        RefOr::T(Schema::AnyOf(o)) => o.items.iter().any(has_rules),
        RefOr::T(Schema::AllOf(o)) => o.items.iter().any(has_rules),
        RefOr::T(_) => false,
    }
}

const BAD_REQUEST: &str = "BadRequest";
const UNAUTHENTICATED: &str = "Unauthenticated";
const FORBIDDEN: &str = "Forbidden";
const NOT_FOUND: &str = "NotFound";
const PAYLOAD_TOO_LARGE: &str = "PayloadTooLarge";
const REQUEST_TIMEOUT: &str = "RequestTimeout";
const UNSUPPORTED_MEDIA_TYPE: &str = "UnsupportedMediaType";
const INVALID: &str = "Invalid";
const RATE_LIMITED_RESPONSE: &str = "RateLimited";
const UNAVAILABLE: &str = "Unavailable";

fn problem_content() -> Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("Problem")))
        .build()
}

fn problem(description: &str) -> ResponseBuilder {
    ResponseBuilder::new()
        .description(description)
        .content(PROBLEM_JSON, problem_content())
}

/// `404 not-found`, for a route whose path names something: `(status = 404, response =
/// NotFound)` in its `#[utoipa::path]`.
pub struct NotFound;

impl<'r> ToResponse<'r> for NotFound {
    fn response() -> (&'r str, RefOr<Response>) {
        (NOT_FOUND, RefOr::T(not_found()))
    }
}

fn not_found() -> Response {
    problem(
        "`not-found`: the path names nothing there is (an unknown id, a product not in the \
         cart) or something the caller may not see (another customer's order or record, a \
         cart without its `Cart-Token`); both are answered alike, so nobody learns what exists.",
    )
    .build()
}

fn seconds_header(description: &str) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0)),
        )
        .description(Some(description))
        .build()
}

fn common_responses() -> Vec<(&'static str, Response)> {
    vec![
        (
            BAD_REQUEST,
            problem(
                "`malformed-json`: the body is not JSON. `bad-request`: a query string that \
                 cannot be read (an unknown parameter, `limit=ten`) or a path that is not \
                 UTF-8. `invalid-cursor`: a cursor this server did not issue.",
            )
            .build(),
        ),
        (
            UNAUTHENTICATED,
            problem(
                "`unauthenticated`: no credentials where the route needs them, or credentials \
                 that are malformed, forged, expired or revoked — on any route, public ones \
                 too; a wrong e-mail or password at log-in.",
            )
            .header(
                "WWW-Authenticate",
                HeaderBuilder::new()
                    .schema(ObjectBuilder::new().schema_type(Type::String))
                    .description(Some("`Bearer realm=\"orderly\"`"))
                    .build(),
            )
            .build(),
        ),
        (
            FORBIDDEN,
            problem(
                "`forbidden`: the caller is known but lacks the permission, or is a customer \
                 naming another customer.",
            )
            .build(),
        ),
        (NOT_FOUND, not_found()),
        (
            PAYLOAD_TOO_LARGE,
            problem("`payload-too-large`: the body is over 1 MiB.").build(),
        ),
        (
            REQUEST_TIMEOUT,
            problem(
                "`request-timeout`: the body did not arrive within the server's body timeout \
                 (15 s by default); the connection is closed.",
            )
            .build(),
        ),
        (
            UNSUPPORTED_MEDIA_TYPE,
            problem("`unsupported-media-type`: a body without `Content-Type: application/json`.")
                .build(),
        ),
        (
            INVALID,
            problem(
                "`validation`: a field or query value that is missing, of the wrong type, out \
                 of range or unknown (`errors` lists each); `idempotency-key-reused`.",
            )
            .build(),
        ),
        (
            RATE_LIMITED_RESPONSE,
            problem("`rate-limited`: too many log-ins or orders.")
                .header(
                    "Retry-After",
                    seconds_header("Seconds to wait before trying again."),
                )
                .build(),
        ),
        (
            UNAVAILABLE,
            problem(
                "`unavailable`: the database is unreachable or busy, or the server holds as \
                 many connections as it allows and all are busy; retry after `Retry-After`.",
            )
            .header(
                "Retry-After",
                seconds_header("Seconds to wait before retrying."),
            )
            .build(),
        ),
    ]
}

/// `POST /graphql`, described here: its handler has no `#[utoipa::path]`, as the schema it runs
/// lives with async-graphql.
#[must_use]
pub fn graphql_operation() -> Operation {
    let request = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some("One GraphQL request."))
        .property(
            "query",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(
                    "The GraphQL document; without one the answer is an `invalid-query` error.",
                ))
                .examples(["{ products(first: 2) { edges { node { id name } } } }"]),
        )
        .property(
            "operationName",
            ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                .description(Some("Which operation of the document to run.")),
        )
        .property(
            "variables",
            ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
                .additional_properties(Some(AdditionalProperties::FreeForm(true)))
                .description(Some("Values of the document's variables.")),
        );
    let response = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "`data`, and `errors` when something went wrong; each error's `extensions.code` is \
             a problem code.",
        ))
        .property(
            "data",
            ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
                .description(Some("`null` when the query could not run")),
        )
        .property(
            "errors",
            ArrayBuilder::new().items(
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .property("message", ObjectBuilder::new().schema_type(Type::String))
                    .required("message"),
            ),
        )
        .property("extensions", ObjectBuilder::new().schema_type(Type::Object));
    OperationBuilder::new()
        .tag("graphql")
        .summary(Some("Runs a GraphQL query or mutation."))
        .description(Some(
            "The schema is at `docs/schema.graphql` and by introspection; `GET /graphql` is \
             GraphiQL. Each field checks access as its REST twin does.",
        ))
        .request_body(Some(
            RequestBodyBuilder::new()
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(request)).build(),
                )
                .required(Some(utoipa::openapi::Required::True))
                .build(),
        ))
        .response(
            "200",
            ResponseBuilder::new()
                .description("The result; errors of the query are in `errors`.")
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(response)).build(),
                ),
        )
        .build()
}

/// `GET /graphql`: the GraphiQL page.
#[must_use]
pub fn graphiql_operation() -> Operation {
    OperationBuilder::new()
        .tag("graphql")
        .summary(Some(
            "GraphiQL, to explore the schema and try queries in a browser.",
        ))
        .response(
            "200",
            ResponseBuilder::new().description("The page").content(
                "text/html; charset=utf-8",
                ContentBuilder::new()
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .build(),
            ),
        )
        .build()
}

// ----- rule schemas ----------------------------------------------------------------------

/// Control characters (Unicode `Cc`, what `char::is_control` refuses), as a class body.
const CONTROL: &str = r"\x00-\x1F\x7F-\x9F";
/// White space `str::trim` removes that is not a control character, as a class body.
const BLANK: &str = r" \xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";
/// White space that is a control character (tab, newlines, NEL), as a class body.
const CONTROL_BLANK: &str = r"\t-\r\x85";

/// `check_text`: some character that is not white space, and no control character.
fn free_text_pattern() -> String {
    format!("^[^{CONTROL}]*[^{CONTROL}{BLANK}][^{CONTROL}]*$")
}

/// Not blank: some character that is not white space (control characters allowed).
fn non_blank_pattern() -> String {
    format!("[^{CONTROL_BLANK}{BLANK}]")
}

/// Merchant ids (`ProductId::parse`, `CustomerId::parse`).
pub const MERCHANT_ID_PATTERN: &str = "^[A-Za-z0-9_.:-]+$";
/// `Address::validate`'s country.
pub const COUNTRY_PATTERN: &str = "^[A-Z]{2}$";
/// A currency code's shape; [`CurrencyCode`] also lists the codes Orderly has.
pub const CURRENCY_PATTERN: &str = "^[A-Z]{3}$";

/// `Preferences::validate`: E.164.
fn phone_pattern() -> String {
    let digits = Preferences::PHONE_DIGITS;
    format!(
        r"^\+[1-9][0-9]{{{},{}}}$",
        digits.start() - 1,
        digits.end() - 1
    )
}

/// `IdempotencyKey::parse`: visible ASCII.
fn idempotency_key_pattern() -> String {
    format!("^[!-~]{{1,{MAX_IDEMPOTENCY_KEY}}}$")
}

/// A price in a request: digits, and at most as many decimals as the most precise currency
/// has (each currency's own number is checked by the server).
fn amount_pattern() -> String {
    let decimals = Currency::all().map(Currency::exponent).max().unwrap_or(0);
    format!(r"^[0-9]+(\.[0-9]{{1,{decimals}}})?$")
}

/// `Rate::parse`: an unsigned decimal with at most [`RATE_DECIMALS`] places, and no more
/// whole digits than [`MAX_RATE_UNITS`] has (leading zeros aside).
fn rate_pattern() -> String {
    let digits = MAX_RATE_UNITS.to_string().len();
    format!(r"^0*[0-9]{{1,{digits}}}(\.[0-9]{{1,{RATE_DECIMALS}}})?$")
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn integer(min: i64, max: i64) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(min))
        .maximum(Some(max))
}

fn free_text(max: usize, what: &str) -> ObjectBuilder {
    string()
        .min_length(Some(1))
        .max_length(Some(max))
        .pattern(Some(free_text_pattern()))
        .description(Some(format!(
            "{what}: 1 to {max} characters of any script, emoji included; not only white \
             space; no control characters (newlines, tabs). Kept byte for byte."
        )))
}

fn names<I: IntoIterator<Item = S>, S: Into<String>>(values: I) -> Option<Vec<Value>> {
    Some(
        values
            .into_iter()
            .map(|v| Value::String(v.into()))
            .collect(),
    )
}

/// Declares a rule schema: a component named after the type.
macro_rules! rule_schema {
    ($(#[$doc:meta])* $name:ident => $schema:expr) => {
        $(#[$doc])*
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                RefOr::T(Schema::Object($schema.build()))
            }
        }

        impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    };
}

rule_schema!(
    /// A product or customer id chosen by the shop.
    MerchantId => string()
        .min_length(Some(1))
        .max_length(Some(MAX_ID_LEN))
        .pattern(Some(MERCHANT_ID_PATTERN))
        .description(Some(format!(
            "An id chosen by the shop: 1 to {MAX_ID_LEN} ASCII letters, digits, `-`, `_`, `.` \
             or `:`."
        )))
        .examples([json!("001")])
);

rule_schema!(
    /// An order's or cart's id.
    Uuid => string()
        // Without utoipa's `uuid` feature the format has no variant of its own.
        .format(Some(SchemaFormat::Custom("uuid".to_owned())))
        .description(Some("A UUID made by Orderly, hyphenated."))
);

rule_schema!(
    /// A currency Orderly has.
    CurrencyCode => string()
        .pattern(Some(CURRENCY_PATTERN))
        .enum_values(names(Currency::all().map(Currency::code)))
        .description(Some("An ISO 4217 code Orderly has, in capitals."))
        .examples([json!("USD")])
);

rule_schema!(
    /// A country.
    CountryCode => string()
        .min_length(Some(2))
        .max_length(Some(2))
        .pattern(Some(COUNTRY_PATTERN))
        .description(Some("ISO 3166-1 alpha-2, in capitals."))
        .examples([json!("JP")])
);

rule_schema!(
    /// A person's or product's name.
    PersonOrProductName => free_text(Name::MAX, "A name").examples([json!("山田 太郎")])
);

rule_schema!(
    /// A part of a postal address.
    AddressLine => free_text(Address::MAX_LINE, "A part of an address")
);

rule_schema!(
    /// Why something was done.
    Reason => free_text(MAX_REASON, "A reason")
);

rule_schema!(
    /// A carrier or tracking number.
    ShipmentText => free_text(MAX_SHIPMENT_TEXT, "Shipment text")
);

rule_schema!(
    /// A staff note.
    NoteText => string()
        .min_length(Some(1))
        .max_length(Some(MAX_NOTE))
        .pattern(Some(non_blank_pattern()))
        .description(Some(format!(
            "1 to {MAX_NOTE} characters of any script, not only white space; newlines allowed."
        )))
);

rule_schema!(
    /// A notification's key.
    NotificationKey => string()
        .min_length(Some(1))
        .max_length(Some(MAX_KEY))
        .description(Some(format!(
            "A failed notification's `key`, as listed: 1 to {MAX_KEY} characters."
        )))
);

rule_schema!(
    /// An API key's name.
    KeyName => string()
        .min_length(Some(1))
        .max_length(Some(MAX_KEY_NAME))
        .pattern(Some(non_blank_pattern()))
        .description(Some(format!(
            "What the key is for: 1 to {MAX_KEY_NAME} characters, not only white space."
        )))
);

rule_schema!(
    /// An e-mail address.
    EmailAddress => string()
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
        .min_length(Some(3))
        .max_length(Some(MAX_EMAIL_BYTES))
        .description(Some(format!(
            "An e-mail address: one `@`, a dotted domain, no white space; at most \
             {MAX_EMAIL_BYTES} bytes."
        )))
        .examples([json!("yamada@example.jp")])
);

rule_schema!(
    /// A new password.
    NewPassword => string()
        .min_length(Some(orderly_auth::password::MIN_LEN))
        .max_length(Some(orderly_auth::password::MAX_LEN))
        .description(Some(format!(
            "At least {} characters and at most {} bytes.",
            orderly_auth::password::MIN_LEN,
            orderly_auth::password::MAX_LEN
        )))
);

rule_schema!(
    /// An E.164 phone number.
    PhoneNumber => string()
        .pattern(Some(phone_pattern()))
        .description(Some("E.164: `+`, the country code and the number, 8 to 15 digits."))
        .examples([json!("+15551234567")])
);

rule_schema!(
    /// An `Idempotency-Key`.
    IdempotencyKeyText => string()
        .min_length(Some(1))
        .max_length(Some(MAX_IDEMPOTENCY_KEY))
        .pattern(Some(idempotency_key_pattern()))
        .description(Some(format!(
            "1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters; a UUID is a good choice."
        )))
);

rule_schema!(
    /// A price amount in a request.
    AmountText => string()
        .pattern(Some(amount_pattern()))
        .description(Some(
            "A decimal string, not negative, with at most the currency's decimal places (USD \
             2, JPY 0, KWD 3).",
        ))
        .examples([json!("279.98")])
);

rule_schema!(
    /// An exchange rate.
    RateText => string()
        .pattern(Some(rate_pattern()))
        .description(Some(format!(
            "A decimal string greater than 0 and at most {MAX_RATE_UNITS}, with at most \
             {RATE_DECIMALS} decimal places."
        )))
        .examples([json!("151.25")])
);

rule_schema!(
    /// How many of a product.
    Quantity => integer(
        i64::from(*QUANTITY_RANGE.start()),
        i64::from(*QUANTITY_RANGE.end()),
    )
    .examples([json!(1)])
);

rule_schema!(
    /// Units on hand.
    StockCount => integer(0, MAX_STOCK)
);

rule_schema!(
    /// A page size.
    PageLimit => integer(i64::from(*PAGE_LIMITS.start()), i64::from(*PAGE_LIMITS.end()))
        .default(Some(json!(DEFAULT_PAGE_LIMIT)))
);

rule_schema!(
    /// A page size of the audit log.
    AuditLimit => integer(
        i64::from(*AUDIT_PAGE_LIMITS.start()),
        i64::from(*AUDIT_PAGE_LIMITS.end()),
    )
    .default(Some(json!(DEFAULT_AUDIT_PAGE_LIMIT)))
);

rule_schema!(
    /// A staff role.
    RoleName => string().enum_values(names(Role::ALL.map(Role::as_str)))
);

rule_schema!(
    /// A scope an API key may hold.
    KeyScope => string().enum_values(names(
        Permission::ALL
            .into_iter()
            .filter(|p| p.grantable_to_keys())
            .map(Permission::as_str),
    ))
);

rule_schema!(
    /// An order status.
    OrderStatusName => string().enum_values(names(OrderStatus::ALL.map(OrderStatus::as_str)))
);

rule_schema!(
    /// The notification list kept.
    NotificationStatus => string()
        .enum_values(names(["failed"]))
        .description(Some("`failed`: the only list kept."))
);

/// Every rule schema, for the document's components.
fn rule_schemas() -> Vec<(Cow<'static, str>, RefOr<Schema>)> {
    fn entry<T: ToSchema>() -> (Cow<'static, str>, RefOr<Schema>) {
        (T::name(), T::schema())
    }
    vec![
        entry::<MerchantId>(),
        entry::<Uuid>(),
        entry::<CurrencyCode>(),
        entry::<CountryCode>(),
        entry::<PersonOrProductName>(),
        entry::<AddressLine>(),
        entry::<Reason>(),
        entry::<ShipmentText>(),
        entry::<NoteText>(),
        entry::<NotificationKey>(),
        entry::<KeyName>(),
        entry::<EmailAddress>(),
        entry::<NewPassword>(),
        entry::<PhoneNumber>(),
        entry::<IdempotencyKeyText>(),
        entry::<AmountText>(),
        entry::<RateText>(),
        entry::<Quantity>(),
        entry::<StockCount>(),
        entry::<StockDelta>(),
        entry::<PageLimit>(),
        entry::<AuditLimit>(),
        entry::<RoleName>(),
        entry::<KeyScope>(),
        entry::<OrderStatusName>(),
        entry::<NotificationStatus>(),
    ]
}

/// A stock adjustment: not zero, within the stock limit.
pub struct StockDelta;

impl PartialSchema for StockDelta {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(integer(-MAX_STOCK, -1))
            .item(integer(1, MAX_STOCK))
            .description(Some(format!(
                "Units to add (positive) or remove (negative): not zero, at most {MAX_STOCK} \
                 either way."
            )))
            .into()
    }
}

impl ToSchema for StockDelta {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("StockDelta")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use orderly_domain::text::check_text;
    use orderly_domain::{CustomerId, ProductId};
    use regex::Regex;
    use serde_json::Value;
    use utoipa::OpenApi;

    use super::*;

    fn document() -> Value {
        serde_json::to_value(crate::ApiDoc::openapi()).unwrap()
    }

    /// Routes that answer something other than JSON, which the document may leave out.
    const NOT_JSON: &[(&str, &str)] = &[
        ("GET", "/docs"),
        ("GET", "/graphql"),
        ("GET", "/graphql/assets/{file}"),
        ("GET", "/metrics"),
        ("GET", "/"),
    ];

    fn operations(doc: &Value) -> BTreeSet<(String, String)> {
        let mut found = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in ["get", "post", "put", "patch", "delete"] {
                if item.get(method).is_some() {
                    found.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        found
    }

    #[test]
    fn the_document_has_every_json_route_of_the_table_and_no_other() {
        let text = crate::ApiDoc::openapi().to_json().unwrap();
        let doc: Value = serde_json::from_str(&text).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        let table: BTreeSet<(String, String)> = crate::route_table()
            .iter()
            .map(|r| (r.method.to_string(), r.path.clone()))
            .collect();
        let documented = operations(&doc);
        let missing: Vec<_> = table
            .iter()
            .filter(|(m, p)| !NOT_JSON.contains(&(m.as_str(), p.as_str())))
            .filter(|route| !documented.contains(*route))
            .collect();
        assert!(missing.is_empty(), "not in the document: {missing:?}");
        let unknown: Vec<_> = documented.difference(&table).collect();
        assert!(unknown.is_empty(), "not routes: {unknown:?}");
    }

    #[test]
    fn every_reference_resolves() {
        fn walk(value: &Value, doc: &Value, bad: &mut Vec<String>) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(r)) = map.get("$ref") {
                        let pointer = r.trim_start_matches('#');
                        if doc.pointer(pointer).is_none() {
                            bad.push(r.clone());
                        }
                    }
                    map.values().for_each(|v| walk(v, doc, bad));
                }
                Value::Array(items) => items.iter().for_each(|v| walk(v, doc, bad)),
                _ => {}
            }
        }
        let doc = document();
        let mut bad = Vec::new();
        walk(&doc, &doc, &mut bad);
        assert!(bad.is_empty(), "dangling references: {bad:?}");
    }

    #[test]
    fn security_follows_each_routes_access() {
        let doc = document();
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes[ACCESS_TOKEN]["scheme"], "bearer");
        assert_eq!(schemes[API_KEY]["scheme"], "bearer");
        let security = |m: &str, p: &str| doc["paths"][p][m]["security"].clone();
        assert_eq!(security("get", "/v1/products"), json!([]));
        assert_eq!(security("get", "/v1/me"), json!([{ACCESS_TOKEN: []}]));
        assert_eq!(
            security("post", "/v1/products"),
            json!([{API_KEY: ["catalog:write"]}, {ACCESS_TOKEN: ["catalog:write"]}])
        );
        assert_eq!(
            security("get", "/v1/orders"),
            json!([{API_KEY: ["orders:read"]}, {ACCESS_TOKEN: []}])
        );
        assert_eq!(
            security("post", "/v1/api-keys"),
            json!([{ACCESS_TOKEN: ["keys:manage"]}])
        );
        for route in crate::route_table() {
            let m = route.method.as_str().to_lowercase();
            if doc["paths"][&route.path][&m].is_object() {
                assert!(
                    security(&m, &route.path).is_array(),
                    "{} {} has no security",
                    route.method,
                    route.path
                );
            }
        }
    }

    #[test]
    fn routes_of_a_kind_share_their_answers() {
        let doc = document();
        let statuses = |m: &str, p: &str| -> BTreeSet<String> {
            doc["paths"][p][m]["responses"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect()
        };
        let has = |m: &str, p: &str, wanted: &[&str]| {
            let got = statuses(m, p);
            for w in wanted {
                assert!(got.contains(*w), "{m} {p} lacks {w}: {got:?}");
            }
        };
        let lacks = |m: &str, p: &str, unwanted: &[&str]| {
            let got = statuses(m, p);
            for u in unwanted {
                assert!(!got.contains(*u), "{m} {p} has {u}: {got:?}");
            }
        };
        has("get", "/healthz", &["200", "401", "503"]);
        lacks(
            "get",
            "/healthz",
            &["400", "403", "413", "415", "422", "429"],
        );
        has(
            "post",
            "/v1/orders",
            &[
                "201", "400", "401", "403", "408", "413", "415", "422", "429", "503",
            ],
        );
        has("get", "/v1/orders", &["400", "401", "403", "422"]);
        lacks("get", "/v1/orders", &["408", "413", "415", "429"]);
        has("get", "/v1/escalations", &["400"]);
        lacks("get", "/v1/escalations", &["422"]);
        has("post", "/v1/auth/login", &["400", "401", "415", "429"]);
        lacks("post", "/v1/auth/login", &["403"]);
        has("post", "/v1/carts/{id}/checkout", &["429"]);
        let unavailable = &doc["components"]["responses"]["Unavailable"];
        assert!(unavailable["headers"]["Retry-After"].is_object());
        assert!(
            unavailable["content"][PROBLEM_JSON]["schema"]["$ref"]
                .as_str()
                .unwrap()
                .ends_with("/Problem")
        );
        for &(method, path) in RATE_LIMITED {
            assert!(
                crate::route_table()
                    .iter()
                    .any(|r| r.method.as_str() == method && r.path == path),
                "{method} {path} is not a route"
            );
        }
    }

    #[test]
    fn each_documented_route_is_the_one_operation_its_handler_declares() {
        for route in crate::route_table() {
            let Some(own) = &route.openapi else { continue };
            let declared: Vec<(String, Method)> = own
                .paths
                .paths
                .iter()
                .flat_map(|(path, item)| crate::methods(item).map(|m| (path.clone(), m)))
                .collect();
            assert_eq!(
                declared,
                vec![(route.path.clone(), route.method.clone())],
                "{} {}",
                route.method,
                route.path
            );
        }
    }

    #[test]
    fn every_error_answer_is_a_problem() {
        let doc = document();
        let is_problem = |response: &Value| {
            response["content"][PROBLEM_JSON]["schema"]["$ref"] == "#/components/schemas/Problem"
        };
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in ["get", "post", "put", "patch", "delete"] {
                let Some(operation) = item.get(method) else {
                    continue;
                };
                for (status, response) in operation["responses"].as_object().unwrap() {
                    if !is_error(status) {
                        continue;
                    }
                    let response = match response["$ref"].as_str() {
                        Some(r) => doc.pointer(r.trim_start_matches('#')).unwrap(),
                        None => response,
                    };
                    assert!(is_problem(response), "{method} {path} {status}: {response}");
                    assert!(
                        !response["description"].as_str().unwrap().is_empty(),
                        "{method} {path} {status} says nothing"
                    );
                }
            }
        }
    }

    #[test]
    fn a_handler_states_a_shared_answer_only_to_say_more() {
        for route in crate::route_table() {
            let Some(own) = &route.openapi else { continue };
            let Some(operation) = own
                .paths
                .get_path_operation(&route.path, crate::http_method(&route.method))
            else {
                continue;
            };
            let limited = RATE_LIMITED
                .iter()
                .any(|&(m, p)| m == route.method.as_str() && p == route.path);
            for (status, _) in common_answers(operation, route.access, limited) {
                match operation.responses.responses.get(status) {
                    None => {}
                    Some(RefOr::T(response)) if !response.description.is_empty() => {}
                    Some(_) => panic!(
                        "{} {} repeats the shared {status}",
                        route.method, route.path
                    ),
                }
            }
        }
    }

    fn matches(pattern: &str, text: &str) -> bool {
        thread_local! {
            static COMPILED: std::cell::RefCell<std::collections::HashMap<String, Regex>> =
                std::cell::RefCell::default();
        }
        COMPILED.with(|compiled| {
            compiled
                .borrow_mut()
                .entry(pattern.to_owned())
                .or_insert_with(|| Regex::new(pattern).unwrap())
                .is_match(text)
        })
    }

    /// Texts that probe the edges of the text rules.
    fn probes() -> Vec<String> {
        let mut texts: Vec<String> = [
            "",
            " ",
            "a",
            " a ",
            "東京都渋谷区 🏠",
            "a\nb",
            "\t",
            "\u{85}",
            "\u{a0}",
            "\u{feff}",
            "\u{1c}",
            "\u{3000}",
            "x\u{3000}",
            "\u{2028}",
            "\u{200b}",
            "\u{7f}",
            "\u{9f}",
            "é",
            "001",
            "sku-42_a.b:c",
            "a b",
            "é1",
            "-",
            "A",
            "JP",
            "jp",
            "JPN",
            "USD",
            "usd",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        for c in (0u32..0x3001).filter_map(char::from_u32) {
            texts.push(c.to_string());
            texts.push(format!("a{c}"));
        }
        texts
    }

    #[test]
    fn the_text_patterns_say_what_check_text_does() {
        for text in probes() {
            assert_eq!(
                matches(&free_text_pattern(), &text),
                check_text("f", &text, 1000).is_ok(),
                "{text:?}"
            );
            assert_eq!(
                matches(&non_blank_pattern(), &text),
                !text.trim().is_empty(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn the_id_country_and_currency_patterns_say_what_the_parsers_do() {
        for text in probes() {
            let short = text.len() <= MAX_ID_LEN;
            assert_eq!(
                matches(MERCHANT_ID_PATTERN, &text) && short,
                ProductId::parse(&text).is_ok(),
                "{text:?}"
            );
            assert_eq!(
                ProductId::parse(&text).is_ok(),
                CustomerId::parse(&text).is_ok()
            );
            let address = Address {
                name: "n".into(),
                line1: "l".into(),
                line2: None,
                city: "c".into(),
                region: None,
                postal_code: None,
                country: text.clone(),
            };
            assert_eq!(
                matches(COUNTRY_PATTERN, &text),
                address.validate().is_ok(),
                "{text:?}"
            );
            if Currency::parse(&text).is_ok() {
                assert!(matches(CURRENCY_PATTERN, &text));
            }
        }
    }

    #[test]
    fn the_number_patterns_say_what_the_parsers_do() {
        let kwd = Currency::parse("KWD").unwrap();
        for text in [
            "0", "1", "1.5", "1.25", "1.250", "1.2500", "01.5", "1.", ".5", "-1", "+1", "1e3",
            "1,5", "", " 1", "1 ", "١",
        ] {
            // A price of KWD (the most decimals) parses exactly where the pattern matches.
            assert_eq!(
                matches(&amount_pattern(), text),
                orderly_domain::Money::parse(text, kwd).is_ok_and(|m| !m.is_negative()),
                "{text:?}"
            );
        }
        let rates = "0 0.0 1 0.92 151.25 0.000000001 0.0000000001 1000000 1000000.000000001 \
                     9999999 10000000 0001000000 1. .5 -1 1e3";
        for text in rates.split_whitespace() {
            // Where the pattern matches, the rate parses or is out of range (zero, or above the
            // largest but with no more digits): the server says which with a 422.
            let parsed = orderly_domain::Rate::parse(text);
            let out_of_range = parsed.as_ref().is_err_and(|e| {
                e.message.contains("greater than zero") || e.message.contains("at most")
            });
            if parsed.is_ok() {
                assert!(matches(&rate_pattern(), text), "{text:?}");
            } else if matches(&rate_pattern(), text) {
                assert!(out_of_range, "{text:?}");
            }
        }
        for text in [
            "+15551234567",
            "+1555123",
            "+155512",
            "+0555123456",
            "15551234567",
        ] {
            let prefs = Preferences {
                marketing: true,
                sms_phone: Some(text.to_owned()),
            };
            assert_eq!(
                matches(&phone_pattern(), text),
                prefs.validate().is_ok(),
                "{text:?}"
            );
        }
        for text in [
            "k",
            "a-b_c",
            "sp ace",
            "é",
            &"k".repeat(255),
            &"k".repeat(256),
        ] {
            assert_eq!(
                matches(&idempotency_key_pattern(), text),
                orderly_core::IdempotencyKey::parse(text).is_ok(),
                "{text:?}"
            );
        }
    }
}
