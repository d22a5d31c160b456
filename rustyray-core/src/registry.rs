//! Remote functions by name.
//!
//! Every `#[remote]` function registers itself, before `main` runs, under its
//! stable name `crate::module::function`, with a way to build its task body
//! from codec-encoded arguments. This is the path the durable queue and
//! cluster execution use: they store or send a name and bytes, and find the
//! code again here.
//!
//! Registration goes through [`inventory`], which relies on the linker keeping
//! the registering code: a function in a crate the final binary never refers to
//! may not be linked at all, and then it is not registered. Refer to such a
//! crate from the binary (call any item of it, or write `use that_crate as _;`)
//! to keep its functions.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use crate::call::{ArgTuple, RemoteFunction};
use crate::error::{Error, Result};
use crate::ids::FunctionId;
use crate::object::{Value, downcast_value};
use crate::spec::{BodyResult, TaskBody, TaskError};

/// One registered remote function.
pub struct RegisteredFunction {
    name: &'static str,
    signature: &'static str,
    is_async: bool,
    make_body: fn(&[u8]) -> Result<TaskBody>,
    make_json_body: fn(&str, &str, &serde_json::Value) -> Result<TaskBody>,
    check_json: fn(&str, &str, &serde_json::Value) -> Result<()>,
}

impl RegisteredFunction {
    /// Describes function `F`, taking parameter types `Args`, for registration.
    pub const fn new<F, Args>(name: &'static str, signature: &'static str, is_async: bool) -> Self
    where
        F: RemoteFunction<Args>,
        Args: ArgTuple,
    {
        RegisteredFunction {
            name,
            signature,
            is_async,
            make_body: encoded_body::<F, Args>,
            make_json_body: json_body::<F, Args>,
            check_json: check_json::<F, Args>,
        }
    }

    /// The stable name: `crate::module::function`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The function's id (its name, by reference).
    pub fn id(&'static self) -> FunctionId {
        FunctionId::new(&self.name)
    }

    /// The signature as written, e.g. `fn add(a: i64, b: i64) -> i64`.
    pub fn signature(&self) -> &'static str {
        self.signature
    }

    /// Whether the body is `async`.
    pub fn is_async(&self) -> bool {
        self.is_async
    }

    /// Builds a body that decodes nothing more: `args` (the codec encoding of
    /// the parameter tuple) are decoded now, and the body's output is the codec
    /// encoding (`Vec<u8>`) of the function's result.
    pub fn body_from_encoded(&self, args: &[u8]) -> Result<TaskBody> {
        (self.make_body)(args)
    }

    /// Builds a body from JSON arguments: an array with one element per
    /// parameter (`[]` for none). The body's output is the function's result
    /// as a `serde_json::Value`. This is the durable queue's path: jobs store
    /// their arguments and results as JSON.
    pub fn body_from_json(&self, args: &serde_json::Value) -> Result<TaskBody> {
        (self.make_json_body)(self.name, self.signature, args)
    }

    /// Checks that JSON arguments decode into the parameters, without running
    /// anything; the error names the function, its signature and what did
    /// not match.
    pub fn check_json_args(&self, args: &serde_json::Value) -> Result<()> {
        (self.check_json)(self.name, self.signature, args)
    }
}

impl fmt::Debug for RegisteredFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisteredFunction").field("name", &self.name).field("signature", &self.signature).finish()
    }
}

inventory::collect!(RegisteredFunction);

fn encoded_body<F, Args>(args: &[u8]) -> Result<TaskBody>
where
    F: RemoteFunction<Args>,
    Args: ArgTuple,
{
    let args = F::decode_args(args)?;
    Ok(F::body(args).map_output(encode_output::<F, Args>))
}

fn check_json<F: RemoteFunction<Args>, Args: ArgTuple>(
    name: &str,
    signature: &str,
    args: &serde_json::Value,
) -> Result<()> {
    F::json_args(name, signature, args).map(drop)
}

fn json_body<F, Args>(name: &str, signature: &str, args: &serde_json::Value) -> Result<TaskBody>
where
    F: RemoteFunction<Args>,
    Args: ArgTuple,
{
    let args = F::json_args(name, signature, args)?;
    Ok(F::body(args).map_output(json_output::<F, Args>))
}

fn json_output<F: RemoteFunction<Args>, Args: ArgTuple>(value: Value) -> BodyResult {
    let id = crate::ids::ObjectId::from_u64(0);
    let value = downcast_value::<F::Output>(id, &value).map_err(TaskError::Error)?;
    let json = (F::OUTPUT.to_json)(value)
        .map_err(|message| TaskError::Error(Error::Codec { context: "encoding the result as JSON".into(), message }))?;
    Ok(Arc::new(json))
}

fn encode_output<F: RemoteFunction<Args>, Args: ArgTuple>(value: Value) -> BodyResult {
    let id = crate::ids::ObjectId::from_u64(0);
    let value = downcast_value::<F::Output>(id, &value).map_err(TaskError::Error)?;
    let bytes = (F::OUTPUT.encode)(value).map_err(TaskError::Error)?;
    Ok(Arc::new(bytes))
}

fn index() -> &'static HashMap<&'static str, &'static RegisteredFunction> {
    static INDEX: OnceLock<HashMap<&'static str, &'static RegisteredFunction>> = OnceLock::new();
    INDEX.get_or_init(|| inventory::iter::<RegisteredFunction>.into_iter().map(|f| (f.name, f)).collect())
}

/// Every registered function, sorted by name.
pub fn functions() -> Vec<&'static RegisteredFunction> {
    let mut all: Vec<_> = index().values().copied().collect();
    all.sort_by_key(|f| f.name);
    all
}

/// Finds a function by its stable name; an unknown name is
/// [`Error::FunctionNotFound`] listing the closest registered names.
pub fn lookup(name: &str) -> Result<&'static RegisteredFunction> {
    index()
        .get(name)
        .copied()
        .ok_or_else(|| Error::FunctionNotFound { name: name.to_string(), near: near_matches(name) })
}

/// Up to three registered names close to `name`: by edit similarity of the
/// whole path or of its last segment.
fn near_matches(name: &str) -> Vec<&'static str> {
    let last = |path: &str| path.rsplit("::").next().unwrap_or(path).to_string();
    let wanted_last = last(name);
    let mut scored: Vec<(f64, &'static str)> = index()
        .keys()
        .map(|candidate| {
            let whole = strsim::jaro_winkler(name, candidate);
            let tail = strsim::jaro_winkler(&wanted_last, &last(candidate));
            (whole.max(tail), *candidate)
        })
        .filter(|(score, _)| *score >= 0.8)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    scored.into_iter().take(3).map(|(_, name)| name).collect()
}
