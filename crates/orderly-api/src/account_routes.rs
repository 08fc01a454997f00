//! Sign-up, log-in and tokens; a customer's profile; staff users, API keys and the audit log
//! for admins. Thin: parse, call [`Accounts`], map the result.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, Path};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use orderly_auth::{Permission, Principal, Role};
use orderly_core::AppError;
use orderly_core::accounts::{
    AUDIT_PAGE_LIMITS, Accounts, ApiKey, AuditEntry, DEFAULT_AUDIT_PAGE_LIMIT, Profile,
    ProfileChange, StaffUser, Tokens,
};
use orderly_domain::{Address, Currency};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::dto::AddressDto;
use crate::extract::{ApiJson, ApiQuery};
use crate::openapi::NotFound;
use crate::problem::ApiError;

type ApiResult<T> = Result<T, ApiError>;

/// Sign-up of a customer.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterRequest {
    /// The e-mail to log in with.
    #[schema(value_type = crate::openapi::EmailAddress)]
    email: String,
    /// At least 10 characters.
    #[schema(value_type = crate::openapi::NewPassword)]
    password: String,
    /// Their name, any script.
    #[schema(value_type = crate::openapi::PersonOrProductName)]
    name: String,
    /// The currency their carts open in, e.g. `EUR`.
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::CurrencyCode>)]
    default_currency: Option<String>,
}

/// A log-in.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    /// The account's e-mail.
    email: String,
    /// Its password.
    password: String,
}

/// A refresh token to trade or end.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefreshRequest {
    /// As given by log-in or the last refresh.
    refresh_token: String,
}

/// The answer to sign-up.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    /// The new profile.
    profile: ProfileDto,
    /// The customer is logged in.
    tokens: TokensDto,
}

/// What a log-in, a sign-up or a refresh gives.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokensDto {
    /// The bearer token for `Authorization: Bearer …`.
    access_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    token_type: &'static str,
    /// Seconds until the access token expires.
    #[schema(example = 900)]
    expires_in: i64,
    /// Trade it for new tokens at `POST /v1/auth/refresh`; usable once.
    refresh_token: String,
    /// Seconds until the refresh token (and the session) expires.
    refresh_expires_in: i64,
}

impl From<Tokens> for TokensDto {
    fn from(t: Tokens) -> Self {
        TokensDto {
            access_token: t.access_token,
            token_type: t.token_type,
            expires_in: t.expires_in,
            refresh_token: t.refresh_token,
            refresh_expires_in: t.refresh_expires_in,
        }
    }
}

/// A customer's profile.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProfileDto {
    /// Their customer record, which their orders name.
    customer_id: String,
    /// The e-mail they log in with.
    email: String,
    /// Their name as they write it.
    name: String,
    /// Saved addresses, any script, byte-exact.
    addresses: Vec<AddressDto>,
    /// The currency their carts open in when they name none.
    default_currency: Option<String>,
}

impl From<Profile> for ProfileDto {
    fn from(p: Profile) -> Self {
        ProfileDto {
            customer_id: p.customer_id.to_string(),
            email: p.email,
            name: p.name,
            addresses: p.addresses.iter().map(AddressDto::from).collect(),
            default_currency: p.default_currency.map(|c| c.code().to_owned()),
        }
    }
}

/// A staff user as admins see them.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StaffUserDto {
    /// Their log-in e-mail, which is also their id.
    email: String,
    /// Their name.
    name: String,
    /// What they may do: `support`, `manager`, `admin` or `engineer`.
    role: &'static str,
    /// A disabled user cannot log in or refresh.
    disabled: bool,
    /// When the user was made (RFC 3339).
    created_at: String,
    /// Who made it.
    created_by: String,
}

impl From<StaffUser> for StaffUserDto {
    fn from(u: StaffUser) -> Self {
        StaffUserDto {
            email: u.email,
            name: u.name,
            role: u.role.as_str(),
            disabled: u.disabled,
            created_at: u.created_at.to_rfc3339(),
            created_by: u.created_by,
        }
    }
}

/// An API key's record (never the key itself).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyDto {
    /// The public id (part of the key).
    id: String,
    /// What it is for.
    name: String,
    /// What it may do.
    scopes: Vec<&'static str>,
    /// When it was made (RFC 3339).
    created_at: String,
    /// Who made it.
    created_by: String,
    /// When it was revoked, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_at: Option<String>,
}

impl From<ApiKey> for ApiKeyDto {
    fn from(k: ApiKey) -> Self {
        ApiKeyDto {
            id: k.id,
            name: k.name,
            scopes: k.scopes.iter().map(|p| p.as_str()).collect(),
            created_at: k.created_at.to_rfc3339(),
            created_by: k.created_by,
            revoked_at: k.revoked_at.map(|t| t.to_rfc3339()),
        }
    }
}

/// One entry of the audit log.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntryDto {
    /// Time-ordered id; pass it as `after` for the entries after it.
    id: String,
    /// When (RFC 3339).
    at: String,
    /// Who: `staff:…`, `key:…`, or for a failed log-in the e-mail tried.
    actor: String,
    /// What: `POST /v1/orders/{id}/cancel`, `login`, `login.failed`, …
    action: String,
    /// The thing acted on, if one: an order id, a user, a key id.
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    /// `ok`, or what went wrong (`401`, `wrong password`, …).
    outcome: String,
    /// From where: the client's address as the server saw it.
    source: String,
}

impl From<AuditEntry> for AuditEntryDto {
    fn from(e: AuditEntry) -> Self {
        AuditEntryDto {
            id: e.id,
            at: e.at.to_rfc3339(),
            actor: e.actor,
            action: e.action,
            target: e.target,
            outcome: e.outcome,
            source: e.source,
        }
    }
}

fn currency(field: &str, code: Option<&str>) -> Result<Option<Currency>, AppError> {
    code.map(|c| Currency::parse(c).map_err(|e| AppError::invalid(field, e.to_string())))
        .transpose()
}

/// Registers a customer and logs them in.
#[utoipa::path(post, path = "/v1/auth/register", tag = "accounts", request_body = RegisterRequest, responses(
    (status = 201, body = Registered),
    (status = 409, description = "The e-mail has an account"),
    (status = 422, description = "Invalid fields; a password over 256 bytes or an e-mail over 254 bytes of UTF-8"),
))]
pub async fn register(
    Extension(accounts): Extension<Arc<Accounts>>,
    caller: Caller,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> ApiResult<Response> {
    let default_currency = currency("defaultCurrency", body.default_currency.as_deref())?;
    let (profile, tokens) = accounts
        .register(
            &body.email,
            &body.password,
            &body.name,
            default_currency,
            &caller.source,
        )
        .await?;
    let registered = Registered {
        profile: profile.into(),
        tokens: tokens.into(),
    };
    Ok((StatusCode::CREATED, Json(registered)).into_response())
}

/// Logs a customer in: an access token (minutes) and a refresh token (weeks, usable once).
#[utoipa::path(post, path = "/v1/auth/login", tag = "accounts", request_body = LoginRequest, responses(
    (status = 200, body = TokensDto),
))]
pub async fn login(
    Extension(accounts): Extension<Arc<Accounts>>,
    caller: Caller,
    ApiJson(body): ApiJson<LoginRequest>,
) -> ApiResult<Json<TokensDto>> {
    let tokens = accounts
        .login_customer(&body.email, &body.password, &caller.source)
        .await?;
    Ok(Json(tokens.into()))
}

/// Logs a staff user in.
#[utoipa::path(post, path = "/v1/auth/staff/login", tag = "accounts", request_body = LoginRequest, responses(
    (status = 200, body = TokensDto),
))]
pub async fn staff_login(
    Extension(accounts): Extension<Arc<Accounts>>,
    caller: Caller,
    ApiJson(body): ApiJson<LoginRequest>,
) -> ApiResult<Json<TokensDto>> {
    let tokens = accounts
        .login_staff(&body.email, &body.password, &caller.source)
        .await?;
    Ok(Json(tokens.into()))
}

/// Trades a refresh token for new tokens; the old refresh token is spent.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "accounts", request_body = RefreshRequest, responses(
    (status = 200, body = TokensDto),
))]
pub async fn refresh(
    Extension(accounts): Extension<Arc<Accounts>>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> ApiResult<Json<TokensDto>> {
    Ok(Json(accounts.refresh(&body.refresh_token).await?.into()))
}

/// Ends the session of a refresh token.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "accounts", request_body = RefreshRequest, responses(
    (status = 204, description = "The session is over"),
))]
pub async fn logout(
    Extension(accounts): Extension<Arc<Accounts>>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> ApiResult<StatusCode> {
    accounts.logout(&body.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn customer_email(caller: &Caller) -> ApiResult<&str> {
    match &caller.principal {
        Principal::Customer { email, .. } if !email.is_empty() => Ok(email),
        _ => Err(AppError::Forbidden("profiles belong to customer accounts".into()).into()),
    }
}

/// The signed-in customer's profile.
#[utoipa::path(get, path = "/v1/me", tag = "accounts", responses(
    (status = 200, body = ProfileDto),
))]
pub async fn profile(
    Extension(accounts): Extension<Arc<Accounts>>,
    caller: Caller,
) -> ApiResult<Json<ProfileDto>> {
    Ok(Json(
        accounts.profile(customer_email(&caller)?).await?.into(),
    ))
}

/// A change of profile; absent fields stay.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfilePatch {
    /// A new name.
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::PersonOrProductName>)]
    name: Option<String>,
    /// The new list of saved addresses (replaces the old), at most 20.
    #[serde(default)]
    #[schema(value_type = Option<Vec<crate::dto::AddressDto>>, max_items = 20)]
    addresses: Option<Vec<Address>>,
    /// A new default currency; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<crate::openapi::CurrencyCode>)]
    default_currency: Option<Option<String>>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Changes the signed-in customer's name, saved addresses or default currency.
#[utoipa::path(patch, path = "/v1/me", tag = "accounts", request_body = ProfilePatch, responses(
    (status = 200, body = ProfileDto),
))]
pub async fn update_profile(
    Extension(accounts): Extension<Arc<Accounts>>,
    caller: Caller,
    ApiJson(body): ApiJson<ProfilePatch>,
) -> ApiResult<Json<ProfileDto>> {
    let default_currency = match body.default_currency {
        None => None,
        Some(code) => Some(currency("defaultCurrency", code.as_deref())?),
    };
    let change = ProfileChange {
        name: body.name,
        addresses: body.addresses,
        default_currency,
    };
    Ok(Json(
        accounts
            .update_profile(customer_email(&caller)?, change)
            .await?
            .into(),
    ))
}

/// A new staff user.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewStaff {
    /// Their log-in e-mail (also their id).
    #[schema(value_type = crate::openapi::EmailAddress)]
    email: String,
    /// Their name.
    #[schema(value_type = crate::openapi::PersonOrProductName)]
    name: String,
    /// `support`, `manager`, `admin` or `engineer`.
    #[schema(value_type = crate::openapi::RoleName)]
    role: String,
    /// Their first password, at least 10 characters.
    #[schema(value_type = crate::openapi::NewPassword)]
    password: String,
}

/// A change of a staff user.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StaffPatch {
    /// A new role.
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::RoleName>)]
    role: Option<String>,
    /// Disable (or enable again).
    #[serde(default)]
    disabled: Option<bool>,
}

fn role(text: &str) -> Result<Role, AppError> {
    Role::parse(text).map_err(|m| AppError::invalid("role", m))
}

/// Every staff user.
#[utoipa::path(get, path = "/v1/staff/users", tag = "accounts", responses((status = 200, body = [StaffUserDto])))]
pub async fn list_staff(
    Extension(accounts): Extension<Arc<Accounts>>,
) -> ApiResult<Json<Vec<StaffUserDto>>> {
    let users = accounts.staff().await?;
    Ok(Json(users.into_iter().map(Into::into).collect()))
}

/// Makes a staff user.
#[utoipa::path(post, path = "/v1/staff/users", tag = "accounts", request_body = NewStaff, responses(
    (status = 201, body = StaffUserDto),
    (status = 409, description = "The e-mail has a user"),
    (status = 422, description = "Invalid fields; a password over 256 bytes or an e-mail over 254 bytes of UTF-8"),
))]
pub async fn create_staff(
    Extension(accounts): Extension<Arc<Accounts>>,
    caller: Caller,
    ApiJson(body): ApiJson<NewStaff>,
) -> ApiResult<Response> {
    let user = accounts
        .create_staff(
            &body.email,
            &body.name,
            role(&body.role)?,
            &body.password,
            &caller.actor(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(StaffUserDto::from(user))).into_response())
}

/// Changes a staff user's role, or disables them.
#[utoipa::path(patch, path = "/v1/staff/users/{email}", tag = "accounts", params(("email" = String, Path, description = "The user's e-mail")), request_body = StaffPatch, responses(
    (status = 200, body = StaffUserDto),
    (status = 404, response = NotFound),
))]
pub async fn update_staff(
    Extension(accounts): Extension<Arc<Accounts>>,
    Path(email): Path<String>,
    ApiJson(body): ApiJson<StaffPatch>,
) -> ApiResult<Json<StaffUserDto>> {
    let role = body.role.as_deref().map(role).transpose()?;
    Ok(Json(
        accounts
            .update_staff(&email, role, body.disabled)
            .await?
            .into(),
    ))
}

/// A new API key.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewKey {
    /// What it is for (`warehouse`, `storefront`).
    #[schema(value_type = crate::openapi::KeyName)]
    name: String,
    /// What it may do, e.g. `["orders:place", "orders:read"]`.
    #[schema(value_type = Vec<crate::openapi::KeyScope>, min_items = 1)]
    scopes: Vec<String>,
}

/// A key just made: the only time the key itself is shown.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedKey {
    /// The key; store it now, it cannot be shown again.
    key: String,
    /// Its record.
    #[serde(flatten)]
    record: ApiKeyDto,
}

/// Every API key (never the keys themselves).
#[utoipa::path(get, path = "/v1/api-keys", tag = "accounts", responses((status = 200, body = [ApiKeyDto])))]
pub async fn list_keys(
    Extension(accounts): Extension<Arc<Accounts>>,
) -> ApiResult<Json<Vec<ApiKeyDto>>> {
    let keys = accounts.keys().await?;
    Ok(Json(keys.into_iter().map(Into::into).collect()))
}

/// Makes an API key; the answer is the only time it is shown.
#[utoipa::path(post, path = "/v1/api-keys", tag = "accounts", request_body = NewKey, responses(
    (status = 201, body = CreatedKey),
))]
pub async fn create_key(
    Extension(accounts): Extension<Arc<Accounts>>,
    caller: Caller,
    ApiJson(body): ApiJson<NewKey>,
) -> ApiResult<Response> {
    let scopes = body
        .scopes
        .iter()
        .map(|s| Permission::parse(s).map_err(|m| AppError::invalid("scopes", m)))
        .collect::<Result<Vec<_>, _>>()?;
    let (record, key) = accounts
        .create_key(&body.name, &scopes, &caller.actor())
        .await?;
    let created = CreatedKey {
        key,
        record: record.into(),
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// Revokes an API key.
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "accounts", params(("id" = String, Path, description = "The key's id")), responses(
    (status = 200, description = "The revoked key's record", body = ApiKeyDto),
    (status = 404, response = NotFound),
))]
pub async fn revoke_key(
    Extension(accounts): Extension<Arc<Accounts>>,
    Path(id): Path<String>,
) -> ApiResult<Json<ApiKeyDto>> {
    Ok(Json(accounts.revoke_key(&id).await?.into()))
}

/// Which audit entries.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Entries after this id (the last `id` of the previous page).
    #[serde(default)]
    after: Option<String>,
    /// At most this many (1–500, default 100).
    #[serde(default)]
    #[param(value_type = Option<crate::openapi::AuditLimit>)]
    limit: Option<u32>,
}

/// The audit log, oldest first.
#[utoipa::path(get, path = "/v1/audit", tag = "accounts", params(AuditQuery), responses((status = 200, body = [AuditEntryDto])))]
pub async fn audit_log(
    Extension(accounts): Extension<Arc<Accounts>>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> ApiResult<Json<Vec<AuditEntryDto>>> {
    let limit = query.limit.unwrap_or(DEFAULT_AUDIT_PAGE_LIMIT);
    if !AUDIT_PAGE_LIMITS.contains(&limit) {
        return Err(AppError::invalid(
            "limit",
            format!(
                "must be between {} and {}, got {limit}",
                AUDIT_PAGE_LIMITS.start(),
                AUDIT_PAGE_LIMITS.end()
            ),
        )
        .into());
    }
    Ok(Json(
        accounts
            .audit_log(query.after.as_deref(), limit)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}
