//! The attribute macros of RustyRay: [`macro@remote`] and [`macro@actor`].
//!
//! Generated code names only `::rustyray::...` paths, so it works in any crate
//! that depends on `rustyray`. Misuse is reported at the offending item with a
//! message that says what to do instead.

mod actor;
mod remote;
mod signature;
mod streaming;

use proc_macro::TokenStream;

/// Makes a function callable as a task: `f::remote(args..)` returns an
/// `ObjectRef` at once, `f::options()...remote(args..)` sets task options,
/// and the function stays callable as a plain function.
///
/// See the `rustyray` crate for the full description.
#[proc_macro_attribute]
pub fn remote(attr: TokenStream, item: TokenStream) -> TokenStream {
    remote::expand(attr.into(), item.into()).unwrap_or_else(syn::Error::into_compile_error).into()
}

/// Makes a struct and its `impl` block an actor: `Type::remote(args..)` builds
/// it as a task and returns an `ActorHandle`, whose methods submit actor tasks.
///
/// See the `rustyray` crate for the full description.
#[proc_macro_attribute]
pub fn actor(attr: TokenStream, item: TokenStream) -> TokenStream {
    actor::expand(attr.into(), item.into()).unwrap_or_else(syn::Error::into_compile_error).into()
}
