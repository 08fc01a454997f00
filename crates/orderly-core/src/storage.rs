//! Helpers every storage adapter shares: the document encoding and the cursor pages, so that
//! backends differ only in their SQL (or API calls), never in what they return.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ports::{Page, StoreError};

/// A document as stored: JSON text, byte-exact for every string in it.
///
/// # Errors
/// [`StoreError::Corrupt`] if the value cannot be written (never for domain types).
pub fn encode<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A stored document read back.
///
/// # Errors
/// [`StoreError::Corrupt`] if the text is not a valid document.
pub fn decode<T: DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The position in a sequence-ordered list that a cursor such as `o123` names.
///
/// # Errors
/// [`StoreError::InvalidCursor`] for anything this backend did not issue.
pub fn seq_cursor(cursor: Option<&String>, prefix: char) -> Result<Option<i64>, StoreError> {
    cursor
        .map(|c| {
            c.strip_prefix(prefix)
                .and_then(|n| n.parse::<i64>().ok())
                .filter(|n| *n >= 0)
                .ok_or(StoreError::InvalidCursor)
        })
        .transpose()
}

/// The key a product-list cursor such as `p001` names.
///
/// # Errors
/// [`StoreError::InvalidCursor`] for anything this backend did not issue.
pub fn key_cursor(cursor: Option<&String>, prefix: char) -> Result<Option<String>, StoreError> {
    cursor
        .map(|c| {
            c.strip_prefix(prefix)
                .map(str::to_owned)
                .ok_or(StoreError::InvalidCursor)
        })
        .transpose()
}

/// Turns `limit + 1` rows of `(key, document)` into a page: the extra row only says that there
/// is a next page, whose cursor is made from the last key kept.
///
/// # Errors
/// [`StoreError::Corrupt`] if a document cannot be read.
pub fn page<K, T: DeserializeOwned>(
    mut rows: Vec<(K, String)>,
    limit: u32,
    cursor: impl Fn(&K) -> String,
) -> Result<Page<T>, StoreError> {
    let limit = limit as usize;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_cursor = if more {
        rows.last().map(|(k, _)| cursor(k))
    } else {
        None
    };
    let items = rows
        .iter()
        .map(|(_, doc)| decode(doc))
        .collect::<Result<_, _>>()?;
    Ok(Page { items, next_cursor })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_keeps_limit_rows_and_points_past_the_last() {
        let rows = vec![
            (5, "1".to_owned()),
            (4, "2".to_owned()),
            (3, "3".to_owned()),
        ];
        let p: Page<i32> = page(rows, 2, |k| format!("o{k}")).unwrap();
        assert_eq!(p.items, [1, 2]);
        assert_eq!(p.next_cursor.as_deref(), Some("o4"));
        let last: Page<i32> = page(vec![(1, "9".to_owned())], 2, |k| format!("o{k}")).unwrap();
        assert_eq!(last.next_cursor, None);
    }

    #[test]
    fn foreign_cursors_are_refused() {
        for bad in ["", "x1", "o", "o-3", "o1.5", "p1"] {
            assert_eq!(
                seq_cursor(Some(&bad.to_owned()), 'o'),
                Err(StoreError::InvalidCursor),
                "{bad}"
            );
        }
        assert_eq!(seq_cursor(Some(&"o17".to_owned()), 'o'), Ok(Some(17)));
        assert_eq!(
            key_cursor(Some(&"p001".to_owned()), 'p'),
            Ok(Some("001".to_owned()))
        );
        assert_eq!(
            key_cursor(Some(&"001".to_owned()), 'p'),
            Err(StoreError::InvalidCursor)
        );
    }
}
