//! Which page of a list to read: the limits every list shares.

use orderly_domain::ValueError;

use crate::ports::PageRequest;

/// Page sizes a list accepts.
pub const PAGE_LIMITS: std::ops::RangeInclusive<u32> = 1..=100;
/// The page size of a list that names none.
pub const DEFAULT_PAGE_LIMIT: u32 = 20;

/// Parses a page request's raw values.
///
/// # Errors
/// [`ValueError`] on `limit` outside [`PAGE_LIMITS`].
pub fn page_request(limit: Option<i64>, cursor: Option<String>) -> Result<PageRequest, ValueError> {
    let limit = limit.unwrap_or(i64::from(DEFAULT_PAGE_LIMIT));
    let limit = u32::try_from(limit)
        .ok()
        .filter(|l| PAGE_LIMITS.contains(l))
        .ok_or_else(|| {
            ValueError::new(
                "limit",
                format!(
                    "must be between {} and {}, got {limit}",
                    PAGE_LIMITS.start(),
                    PAGE_LIMITS.end()
                ),
            )
        })?;
    Ok(PageRequest { limit, cursor })
}
