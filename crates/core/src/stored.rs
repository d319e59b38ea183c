//! Decoding rows as SQLite (D1 and the object's storage) hands them back,
//! once, into types: SQLite has no boolean (flags come as 0 and 1) and keeps
//! lists as JSON text. Used as `#[serde(deserialize_with = ...)]` on the
//! worker's row structs, so no row type holds a float or a JSON string
//! (enums stored by name decode with their own `parse`, so each says what
//! an unknown name means).

use serde::de::{DeserializeOwned, Deserializer};
use serde::Deserialize;

/// A flag stored as an integer: 0 is false, anything else true.
pub fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Int(i64),
        Bool(bool),
    }
    Ok(match Stored::deserialize(d)? {
        Stored::Int(n) => n != 0,
        Stored::Bool(b) => b,
    })
}

/// A JSON document stored as text. Text that does not read as `T` (written
/// by hand, or by a version with another shape) reads as `T::default()`,
/// so one bad cell cannot hide its row.
pub fn json_text<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    let text = Option::<String>::deserialize(d)?;
    Ok(text
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Row {
        #[serde(deserialize_with = "flag")]
        enabled: bool,
        #[serde(deserialize_with = "json_text", default)]
        codes: Vec<String>,
    }

    #[test]
    fn flags_read_from_integers_and_booleans() {
        let row: Row = serde_json::from_str(r#"{"enabled":0,"codes":"[\"a\"]"}"#).unwrap();
        assert!(!row.enabled);
        assert_eq!(row.codes, ["a"]);
        let row: Row = serde_json::from_str(r#"{"enabled":1,"codes":null}"#).unwrap();
        assert!(row.enabled);
        assert!(row.codes.is_empty());
        let row: Row = serde_json::from_str(r#"{"enabled":true}"#).unwrap();
        assert!(row.enabled);
    }

    #[test]
    fn unreadable_json_text_reads_as_the_default() {
        let row: Row = serde_json::from_str(r#"{"enabled":2,"codes":"not json"}"#).unwrap();
        assert!(row.enabled);
        assert!(row.codes.is_empty());
    }
}
