//! The one compile-time check of the types in a remote signature, and the
//! operations on them that generated code uses.
//!
//! A parameter type of a remote function, actor constructor or actor method
//! must be a [`TaskValue`] (`Clone + Send + Sync + 'static` and serde
//! `Serialize + Deserialize`), a result type a [`TaskOutput`] (`Send + Sync +
//! 'static` and `Serialize`). Generated code asks for each parameter's
//! operations once, with [`arg_ops`] written at the parameter's type (and
//! for the result with [`output_ops`]): that is the one place a type that
//! falls short is reported, with the trait's message naming the type. The
//! rest of the generated code takes the operations as values ([`ArgOps`],
//! [`OutputOps`]) and puts no serde or `Clone` bound on the type, so the
//! same mistake raises no second error elsewhere.
//!
//! Each check trait has two implementations, one of which no type has:
//! asked for `T: TaskValue<_>`, the compiler weighs both, finds that neither
//! applies and reports the trait itself, once, instead of one error per
//! missing bound (`Clone`, `Serialize`, `Deserialize`, ...).

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::arg::TaskArg;
use crate::codec;
use crate::error::{Error, Result};

/// The implementation of the check traits that applies.
#[derive(Debug)]
pub enum Checked {}

/// The implementation of the check traits that never applies.
#[derive(Debug)]
pub enum Unreachable {}

mod sealed {
    /// No type implements it.
    pub trait Never {}
}

/// What a parameter type of a remote function or actor method must be.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a parameter of a remote function or actor method",
    label = "arguments must be `Clone + Send + Sync + 'static` and serde `Serialize + Deserialize`",
    note = "derive them: `#[derive(Clone, serde::Serialize, serde::Deserialize)]`; arguments are stored, shared and, for calls by name, serialized"
)]
pub trait TaskValue<M>: Clone + Send + Sync + Serialize + DeserializeOwned + 'static {}
impl<T: Clone + Send + Sync + Serialize + DeserializeOwned + 'static> TaskValue<Checked> for T {}
impl<T: Clone + Send + Sync + Serialize + DeserializeOwned + 'static + sealed::Never> TaskValue<Unreachable> for T {}

/// What a result type of a remote function or actor method must be.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the result of a remote function or actor method",
    label = "results must be `Send + Sync + 'static` and serde `Serialize`",
    note = "derive it: `#[derive(serde::Serialize)]` (and `Clone` to read it with `get`); results are stored, shared and, for calls by name, serialized"
)]
pub trait TaskOutput<M>: Send + Sync + Serialize + 'static {}
impl<T: Send + Sync + Serialize + 'static> TaskOutput<Checked> for T {}
impl<T: Send + Sync + Serialize + 'static + sealed::Never> TaskOutput<Unreachable> for T {}

/// What an item type of a streaming function or method must be.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the item type of a streaming function or method",
    label = "the items a `Yield<T>` sends must be `Send + Sync + 'static`",
    note = "each item is stored as an object other tasks may read; an item holding a borrow or an `Rc` cannot be"
)]
pub trait StreamItem<M>: Send + Sync + 'static {}
impl<T: Send + Sync + 'static> StreamItem<Checked> for T {}
impl<T: Send + Sync + 'static + sealed::Never> StreamItem<Unreachable> for T {}

/// Decodes one value from the front of codec bytes; returns it and the rest.
pub type TakeDecoded<T> = fn(&[u8]) -> std::result::Result<(T, &[u8]), String>;

/// The operations on one parameter type that generated code needs.
pub struct ArgOps<T> {
    /// Copies a value (for an attempt that may be retried).
    pub clone: fn(&T) -> T,
    /// The value as JSON text, for a call that records its arguments.
    pub describe: fn(&T) -> String,
    /// Decodes one value from the front of codec bytes; returns the rest.
    pub take_decoded: TakeDecoded<T>,
    /// Reads one value from JSON.
    pub from_json: fn(&serde_json::Value) -> std::result::Result<T, String>,
}

impl<T> Clone for ArgOps<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for ArgOps<T> {}

impl<T> std::fmt::Debug for ArgOps<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArgOps").field("type", &std::any::type_name::<T>()).finish()
    }
}

impl<T> ArgOps<T> {
    /// An argument copied for an attempt that may be retried.
    pub fn clone_arg(&self, arg: &TaskArg<T>) -> TaskArg<T> {
        arg.clone_with(self.clone)
    }

    /// An argument as text: a value as JSON, a reference as `ObjectRef(id)`.
    pub fn describe_arg(&self, arg: &TaskArg<T>) -> String {
        arg.describe_with(self.describe)
    }
}

/// The operations on a parameter type; written at the parameter's type, this
/// is where a type that cannot be a parameter is reported.
pub const fn arg_ops<T: TaskValue<M>, M>() -> ArgOps<T> {
    ArgOps { clone: T::clone, describe: describe::<T>, take_decoded: take_decoded::<T>, from_json: from_json::<T> }
}

fn describe<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|error| format!("<not representable: {error}>"))
}

fn take_decoded<T: DeserializeOwned>(bytes: &[u8]) -> std::result::Result<(T, &[u8]), String> {
    postcard::take_from_bytes(bytes).map_err(|error| error.to_string())
}

fn from_json<T: DeserializeOwned>(value: &serde_json::Value) -> std::result::Result<T, String> {
    T::deserialize(value).map_err(|error| error.to_string())
}

/// The operations on a result type that generated code needs.
pub struct OutputOps<T> {
    /// The value in the codec's bytes.
    pub encode: fn(&T) -> Result<Vec<u8>>,
    /// The value as JSON.
    pub to_json: fn(&T) -> std::result::Result<serde_json::Value, String>,
}

impl<T> Clone for OutputOps<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for OutputOps<T> {}

impl<T> std::fmt::Debug for OutputOps<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputOps").field("type", &std::any::type_name::<T>()).finish()
    }
}

/// The operations on a result type; written at the result type, this is
/// where a type that cannot be a result is reported.
pub const fn output_ops<T: TaskOutput<M>, M>() -> OutputOps<T> {
    OutputOps { encode: codec::encode::<T>, to_json: to_json::<T> }
}

fn to_json<T: Serialize>(value: &T) -> std::result::Result<serde_json::Value, String> {
    serde_json::to_value(value).map_err(|error| error.to_string())
}

/// Compile-time check used by generated code: `T` can be the item type of a stream.
pub const fn assert_stream_item<T: StreamItem<M>, M>() {}

/// Reads a call's arguments, one parameter after the other, from the
/// codec's encoding of the parameter tuple.
#[derive(Debug)]
pub struct ArgDecoder<'a> {
    bytes: &'a [u8],
    function: &'static str,
}

impl<'a> ArgDecoder<'a> {
    /// A decoder of the arguments of `function`.
    pub fn new(bytes: &'a [u8], function: &'static str) -> Self {
        ArgDecoder { bytes, function }
    }

    fn error(&self, message: String) -> Error {
        Error::Codec { context: format!("decoding the arguments of `{}`", self.function), message }
    }

    /// The next argument.
    pub fn next<T>(&mut self, ops: ArgOps<T>) -> Result<TaskArg<T>> {
        let (value, rest) = (ops.take_decoded)(self.bytes).map_err(|message| self.error(message))?;
        self.bytes = rest;
        Ok(TaskArg::Value(value))
    }

    /// The end: no bytes may be left over.
    pub fn finish(self) -> Result<()> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(self.error(format!("{} unexpected byte(s) after the value", self.bytes.len())))
        }
    }
}

/// Reads a call's arguments, one parameter after the other, from a JSON
/// array with one element per parameter.
#[derive(Debug)]
pub struct JsonArgs<'a> {
    items: std::slice::Iter<'a, serde_json::Value>,
    name: &'a str,
    signature: &'a str,
}

impl<'a> JsonArgs<'a> {
    /// The arguments of `name` (`signature`, taking `count` parameters) in `args`.
    pub fn new(name: &'a str, signature: &'a str, args: &'a serde_json::Value, count: usize) -> Result<Self> {
        let error = |message: String| json_error(name, signature, message);
        let items: &'a [serde_json::Value] = match args {
            serde_json::Value::Array(items) => items,
            // `null` is how serde writes `()`: a call without parameters.
            serde_json::Value::Null if count == 0 => &[],
            other => {
                return Err(error(format!("invalid type: {}, expected a tuple of size {count}", json_kind(other))));
            }
        };
        if items.len() != count {
            return Err(error(format!("invalid length {}, expected a tuple of size {count}", items.len())));
        }
        Ok(JsonArgs { items: items.iter(), name, signature })
    }

    /// The next argument.
    pub fn next<T>(&mut self, ops: ArgOps<T>) -> Result<TaskArg<T>> {
        let Some(item) = self.items.next() else {
            return Err(json_error(self.name, self.signature, "fewer arguments than parameters".into()));
        };
        (ops.from_json)(item).map(TaskArg::Value).map_err(|message| json_error(self.name, self.signature, message))
    }
}

fn json_error(name: &str, signature: &str, message: String) -> Error {
    Error::Codec {
        context: format!(
            "decoding the JSON arguments of `{name}` (`{signature}`; pass a JSON array, one element per parameter)"
        ),
        message,
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "sequence",
        serde_json::Value::Object(_) => "map",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_decode_one_after_the_other() {
        let bytes = codec::encode(&(7u32, "x".to_string())).unwrap();
        let mut decoder = ArgDecoder::new(&bytes, "f");
        let a = decoder.next(arg_ops::<u32, _>()).unwrap();
        let b = decoder.next(arg_ops::<String, _>()).unwrap();
        decoder.finish().unwrap();
        assert!(matches!((a, b), (TaskArg::Value(7), TaskArg::Value(s)) if s == "x"));

        let mut decoder = ArgDecoder::new(&bytes, "f");
        decoder.next(arg_ops::<u32, _>()).unwrap();
        let error = decoder.finish().unwrap_err();
        assert!(error.to_string().contains("unexpected byte"), "{error}");
    }

    #[test]
    fn json_arguments_are_an_array_of_the_right_length() {
        let args = serde_json::json!([1, "a"]);
        let mut json = JsonArgs::new("f", "fn f(a: u8, b: String)", &args, 2).unwrap();
        assert!(matches!(json.next(arg_ops::<u8, _>()).unwrap(), TaskArg::Value(1)));
        assert!(json.next(arg_ops::<u8, _>()).unwrap_err().to_string().contains("invalid type"));
        let error = JsonArgs::new("f", "sig", &serde_json::json!([1]), 2).unwrap_err();
        assert!(error.to_string().contains("invalid length 1, expected a tuple of size 2"), "{error}");
        assert!(JsonArgs::new("f", "sig", &serde_json::Value::Null, 0).is_ok());
        assert!(JsonArgs::new("f", "sig", &serde_json::json!({}), 1).is_err());
    }
}
