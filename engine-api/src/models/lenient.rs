//! Deserializers that accept what different engines send for one field.

use serde::{Deserialize, Deserializer};

/// An integer sent as a number or as a string (Podman sends some timestamps as
/// strings); anything else becomes `None` rather than an error.
pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Num {
        Int(i64),
        Float(f64),
        Text(String),
        Other(serde::de::IgnoredAny),
    }
    Ok(match Option::<Num>::deserialize(d)? {
        Some(Num::Int(i)) => Some(i),
        Some(Num::Float(f)) => Some(f as i64),
        Some(Num::Text(s)) => s.trim().parse().ok(),
        Some(Num::Other(_)) | None => None,
    })
}

/// A value that may be `null` where a collection is expected.
pub fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}
