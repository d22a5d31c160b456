//! The attribute macros of RustyRay: [`macro@remote`] and [`macro@actor`].
//!
//! Generated code names only `::rustyray::...` paths, so it works in any crate
//! that depends on `rustyray`. Misuse is reported at the offending item with a
//! message that says what to do instead.

mod actor;
mod groups;
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
/// A method whose last parameter is a `rustyray::Yield<T>` (and which returns
/// nothing or `Result<(), E>`) streams: `handle.method(args..)` returns an
/// `ObjectStream<T>` of the items it sends, as a `#[remote(streaming)]`
/// function's call does. It keeps its place in the actor's call order; a
/// plain or `&mut self` streaming method holds the actor until it returns
/// (a slow reader holds it too), while an async `&self` one waiting on a full
/// buffer parks only itself: other async calls go on, plain and `&mut self`
/// calls wait for it as for any interleaved call.
///
/// See the `rustyray` crate for the full description.
#[proc_macro_attribute]
pub fn actor(attr: TokenStream, item: TokenStream) -> TokenStream {
    actor::expand(attr.into(), item.into()).unwrap_or_else(syn::Error::into_compile_error).into()
}

/// Tags a method of an `#[actor]` impl block: `#[rustyray::method(concurrency_group
/// = "io")]` on an `async fn(&self)` method puts its calls in the named
/// concurrency group, which the impl block declares with its limit
/// (`#[actor(concurrency_groups(io = 2))]`). `#[actor]` reads and removes it;
/// anywhere else it is an error.
#[proc_macro_attribute]
pub fn method(_attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    syn::Error::new(
        proc_macro2::Span::call_site(),
        "`#[rustyray::method]` goes on a method inside an `#[rustyray::actor]` impl block, which must come \
         before it (the impl block's `#[actor]` reads it)",
    )
    .into_compile_error()
    .into_iter()
    .chain(item)
    .collect::<proc_macro2::TokenStream>()
    .into()
}
