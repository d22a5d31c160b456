//! The one place values become bytes and bytes become values.
//!
//! RustyRay runs tasks in-process without serializing anything; bytes appear
//! only where a value crosses a boundary: a call by name, and later the durable
//! queue and cluster execution. All of them go through this module, which uses
//! [postcard](https://docs.rs/postcard), a maintained, compact serde format.
//! Malformed input is an [`Error::Codec`], never a panic.
//!
//! ```
//! use rustyray_core::codec;
//!
//! let bytes = codec::encode(&(1i64, "two".to_string()))?;
//! let back: (i64, String) = codec::decode(&bytes)?;
//! assert_eq!(back, (1, "two".to_string()));
//!
//! // Truncated input is an error, not a panic.
//! assert!(codec::decode::<(i64, String)>(&bytes[..2]).is_err());
//! # Ok::<(), rustyray_core::Error>(())
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Encodes a value.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    postcard::to_stdvec(value).map_err(|e| Error::Codec {
        context: format!("encoding a `{}`", std::any::type_name::<T>()),
        message: e.to_string(),
    })
}

/// Decodes a value, rejecting input with bytes left over.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let context = || format!("decoding a `{}`", std::any::type_name::<T>());
    let (value, rest) =
        postcard::take_from_bytes(bytes).map_err(|e| Error::Codec { context: context(), message: e.to_string() })?;
    if !rest.is_empty() {
        return Err(Error::Codec {
            context: context(),
            message: format!("{} unexpected byte(s) after the value", rest.len()),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let v = (42u32, vec![1.5f64, 2.5], Some("x".to_string()));
        let b = encode(&v).unwrap();
        assert_eq!(decode::<(u32, Vec<f64>, Option<String>)>(&b).unwrap(), v);
    }

    #[test]
    fn malformed_input_is_an_error() {
        let b = encode(&(1u8, 2u8)).unwrap();
        let err = decode::<(u8, u8, u8)>(&b).unwrap_err();
        assert!(matches!(err, Error::Codec { .. }), "{err}");
        let err = decode::<(u8,)>(&b).unwrap_err();
        assert!(err.to_string().contains("unexpected byte"), "{err}");
        assert!(decode::<String>(&[0xff, 0xff, 0xff]).is_err());
    }
}
