//! `#[remote(streaming)]`: a function that yields its results one by one.
//!
//! For `async fn count(n: u64, out: Yield<u64>) -> Result<(), E>` the
//! expansion keeps the function and adds a marker struct `count` with
//! `count::remote(n)` and `count::options()`, which return a
//! `rustyray::ObjectStream<u64>`, and an implementation of
//! `StreamingFunction` whose body gives each attempt its `Yield` (see
//! `rustyray_core::stream`). The last parameter, the `Yield<T>`, is not an
//! argument of `remote`; the function returns nothing (or `Result<(), E>`).
//! Streaming functions are not registered by name and have no durable form:
//! their items only make sense to a consumer in the same process.

use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, ItemFn, PathArguments, Type};

use crate::signature::{self, Param};

const WHAT: &str = "a #[remote(streaming)] function";

/// The item type `T` of a `Yield<T>` parameter type, if it is one.
pub fn yield_item(ty: &Type) -> Option<Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Yield" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else { return None };
    match args.args.iter().collect::<Vec<_>>().as_slice() {
        [GenericArgument::Type(item)] => Some(item.clone()),
        _ => None,
    }
}

/// The item type of the `Yield<T>` among `inputs` (the typed parameters):
/// `None` without one; an error where a `Yield` is not the last parameter,
/// or (when `streaming` is false) where the function is not declared streaming.
pub fn stream_item(sig: &syn::Signature, inputs: &[&FnArg], what: &str, streaming: bool) -> syn::Result<Option<Type>> {
    let mut found = None;
    for (index, input) in inputs.iter().enumerate() {
        let FnArg::Typed(typed) = input else { continue };
        let Some(item) = yield_item(&typed.ty) else { continue };
        if index + 1 != inputs.len() {
            return Err(syn::Error::new(
                typed.ty.span(),
                format!("the `Yield<T>` of {what} must be its last parameter: `fn {}(.., out: Yield<T>)`", sig.ident),
            ));
        }
        if !streaming {
            return Err(syn::Error::new(
                typed.ty.span(),
                "a function that sends items through a `Yield<T>` is a streaming function: write \
                 `#[rustyray::remote(streaming)]`",
            ));
        }
        found = Some(item);
    }
    Ok(found)
}

/// A streaming function or method returns nothing (or `Result<(), E>`).
pub fn check_output(sig: &syn::Signature, output: &signature::Output, what: &str) -> syn::Result<()> {
    if output.ty.to_string() == "()" {
        return Ok(());
    }
    Err(syn::Error::new(
        sig.output.span(),
        format!(
            "{what} returns nothing (or `Result<(), E>`): its results are the items it sends through its \
             `Yield`, found `-> {}`",
            output.ty.to_string().replace(' ', "")
        ),
    ))
}

pub fn expand(func: ItemFn) -> syn::Result<TokenStream> {
    let sig = &func.sig;
    let missing = || {
        syn::Error::new(
            sig.inputs.span(),
            format!(
                "{WHAT} takes a `rustyray::Yield<T>` as its last parameter and sends its items through it: \
                 `fn {}(.., out: Yield<T>)`",
                sig.ident
            ),
        )
    };
    let inputs: Vec<&FnArg> = sig.inputs.iter().collect();
    let item = stream_item(sig, &inputs, WHAT, true)?.ok_or_else(missing)?;
    let count = sig.inputs.len() - 1;
    let params = signature::params(sig.inputs.iter().take(count), WHAT)?;
    let output = signature::output(&sig.output, WHAT)?;
    check_output(sig, &output, WHAT)?;

    let vis = &func.vis;
    let name = &sig.ident;
    let name_str = name.to_string();
    let stored: Vec<&TokenStream> = params.iter().map(|p| &p.stored).collect();
    let args_ty = quote!((#(#stored,)*));
    let describe = signature::describe_fn(&params, &args_ty);
    let item_tokens = quote!(#item);
    let sizes = signature::size_registrations(stored.iter().copied().chain([&item_tokens]), None);
    let body = body(name, sig.asyncness.is_some(), &params, &output);
    let ops_consts = signature::ops_consts(&params);
    let item_check = item_check(&item);
    let names: Vec<&syn::Ident> = params.iter().map(|p| &p.name).collect();
    let remote_params = params.iter().map(|p| {
        let name = &p.name;
        let stored = &p.stored;
        quote!(#name: impl ::core::convert::Into<::rustyray::TaskArg<#stored>>)
    });
    let marker_doc = format!(
        "Remote-call handle of the streaming function [`{name_str}`](fn@{name_str}): \
         `{name_str}::remote(..)` runs it as a task and returns a stream of its items at once."
    );
    let remote_doc = format!(
        "Submits `{name_str}` as a task and returns the `ObjectStream` of the items it sends. Each argument \
         may be a value, an `ObjectRef` or an `&ObjectRef` of the parameter's type. Never blocks; dropping \
         the stream cancels the task."
    );

    Ok(quote! {
        #func

        #[doc = #marker_doc]
        #[allow(non_camel_case_types)]
        #vis struct #name {
            _private: (),
        }

        impl #name {
            /// The stable name this function is known under.
            pub const NAME: &'static str = ::core::concat!(::core::module_path!(), "::", #name_str);

            #ops_consts

            #[doc = #remote_doc]
            #[track_caller]
            #[allow(clippy::too_many_arguments)]
            pub fn remote(#(#remote_params),*) -> ::rustyray::ObjectStream<#item> {
                ::rustyray::StreamBuilder::<#name, #args_ty>::new().remote(#(#names),*)
            }

            /// Task options for one call (and the stream's `buffer`); end the chain with
            /// `.remote(args..)`.
            pub fn options() -> ::rustyray::StreamBuilder<#name, #args_ty> {
                ::rustyray::StreamBuilder::new()
            }
        }

        impl ::rustyray::__private::StreamingFunction<#args_ty> for #name {
            type Item = #item;
            const NAME: &'static str = #name::NAME;

            fn body(
                args: <#args_ty as ::rustyray::__private::ArgTuple>::TaskArgs,
                source: ::rustyray::__private::StreamSource<#item>,
            ) -> ::rustyray::__private::TaskBody {
                #body
            }

            #describe
        }

        #item_check

        #sizes
    })
}

/// Checks, pointing at the item type of a `Yield<T>`, that `T` can be an item.
pub fn item_check(item: &Type) -> TokenStream {
    let check = quote::quote_spanned!(item.span()=> ::rustyray::__private::assert_stream_item::<#item, _>(););
    quote! {
        const _: () = {
            #[allow(dead_code)]
            fn __rustyray_check_item() { #check }
        };
    }
}

/// The body: for each attempt, take its `Yield` and the arguments, call the
/// function, and apply the stream's retry rule to its result.
fn body(name: &syn::Ident, is_async: bool, params: &[Param], output: &signature::Output) -> TokenStream {
    let idents: Vec<&syn::Ident> = params.iter().map(|p| &p.ident).collect();
    let passes: Vec<TokenStream> = params.iter().map(Param::pass).collect();
    if is_async {
        let ret = output.convert(quote!(#name(#(#passes,)* __rustyray_yield).await));
        let slot = signature::arg_slot(params);
        quote! {
            let slot = #slot;
            ::rustyray::__private::TaskBody::future(move |attempt| {
                let args = slot.take(attempt);
                let source = source.clone();
                async move {
                    let __rustyray_yield = source.attempt(attempt)?;
                    let (#(#idents,)*) = args?;
                    source.finish(#ret)
                }
            })
        }
    } else {
        let ret = output.convert(quote!(#name(#(#passes,)* __rustyray_yield)));
        let slot = signature::arg_slot(params);
        quote! {
            let slot = #slot;
            ::rustyray::__private::TaskBody::plain(move |attempt| {
                let __rustyray_yield = source.attempt(attempt)?;
                let (#(#idents,)*) = slot.take(attempt)?;
                source.finish(#ret)
            })
        }
    }
}
