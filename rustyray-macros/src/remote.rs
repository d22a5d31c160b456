//! `#[remote]`: a function becomes a remote function.
//!
//! For `fn add(a: i64, b: i64) -> i64` the expansion keeps the function as it
//! is and adds, in the type namespace, a marker struct `add` with
//! `add::remote(..)`, `add::options()` and `add::NAME`, an implementation of
//! `RemoteFunction` that builds the task body, and a registry entry under
//! `module_path!()::add` for calls by name.
//!
//! `#[remote(num_returns = n)]` on a function returning an `n`-tuple makes
//! `remote(..)` (and `options()...remote(..)`) return one `ObjectRef` per
//! element, each its own object (see `rustyray_core::returns`); the function
//! is otherwise the same (by name and as a durable job it returns the tuple).

use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn};

use crate::signature::{self, Param};

const WHAT: &str = "a #[remote] function";

pub fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let Attr { num_returns, streaming } = parse_attr(attr)?;
    let func: ItemFn = syn::parse2(item)?;
    let sig = &func.sig;
    if let Some(FnArg::Receiver(receiver)) = sig.inputs.first() {
        return Err(syn::Error::new(
            receiver.span(),
            "#[remote] cannot be used on a method (it takes `self`); for methods on state, \
             put #[rustyray::actor] on the struct and on its impl block",
        ));
    }
    signature::check_common(sig, WHAT)?;
    if streaming {
        return crate::streaming::expand(func);
    }
    let inputs: Vec<&FnArg> = sig.inputs.iter().collect();
    crate::streaming::stream_item(sig, &inputs, WHAT, false)?;
    let params = signature::params(sig.inputs.iter(), WHAT)?;
    let output = signature::output(&sig.output, WHAT)?;
    let elements = match &num_returns {
        Some(n) => Some(tuple_elements(n, &output.ty, &sig.output)?),
        None => None,
    };

    let vis = &func.vis;
    let name = &sig.ident;
    let name_str = name.to_string();
    let is_async = sig.asyncness.is_some();
    let display = signature::display(sig);
    let stored: Vec<&TokenStream> = params.iter().map(|p| &p.stored).collect();
    let idents: Vec<&syn::Ident> = params.iter().map(|p| &p.ident).collect();
    let out_ty = &output.ty;
    let args_ty = quote!((#(#stored,)*));

    let body = body(name, is_async, &params, &output);
    let describe = signature::describe_fn(&params, &args_ty);
    let sizes = signature::size_registrations(stored.iter().copied().chain([out_ty]), None);
    let output_ops =
        quote::quote_spanned!(output_span(&sig.output)=> ::rustyray::__private::output_ops::<#out_ty, _>());
    let ops_consts = signature::ops_consts(&params);
    let decoders = decoders(name, &params, &args_ty);
    let marker_doc = format!(
        "Remote-call handle of [`{name_str}`](fn@{name_str}): `{name_str}::remote(..)` runs it as a task \
         and returns an `ObjectRef` at once."
    );
    // The generated signatures show the user's parameter names; `enqueue`'s
    // own `queue` parameter comes first, so a parameter of that name keeps
    // the generated ones there.
    let names: Vec<&syn::Ident> = params.iter().map(|p| &p.name).collect();
    let remote_params = params.iter().map(|p| {
        let name = &p.name;
        let stored = &p.stored;
        quote!(#name: impl ::core::convert::Into<::rustyray::TaskArg<#stored>>)
    });
    let enqueue_names: Vec<&syn::Ident> =
        if names.iter().any(|name| *name == "queue") { idents.clone() } else { names.clone() };
    let enqueue_params = params.iter().zip(&enqueue_names).map(|(p, name)| {
        let stored = &p.stored;
        quote!(#name: #stored)
    });
    let enqueue_doc = format!(
        "Enqueues `{name_str}` as a durable job in `queue` (the durable queue's `Queue`): the arguments are \
         stored as JSON and the job is committed when the future resolves; a worker runs it."
    );
    let remote_doc = format!(
        "Submits `{name_str}` as a task. Each argument may be a value, an `ObjectRef` or an `&ObjectRef` of \
         the parameter's type. Never blocks; failures surface from `get`."
    );

    let (remote_fn, options_fn, returns_assertion) = match &elements {
        None => (
            quote! {
                #[doc = #remote_doc]
                #[track_caller]
                #[allow(clippy::too_many_arguments)]
                pub fn remote(#(#remote_params),*) -> ::rustyray::ObjectRef<#out_ty> {
                    ::rustyray::TaskBuilder::<#name, #args_ty>::new().remote(#(#names),*)
                }
            },
            quote! {
                /// Task options for one call; end the chain with `.remote(args..)`.
                pub fn options() -> ::rustyray::TaskBuilder<#name, #args_ty> {
                    ::rustyray::TaskBuilder::new()
                }
            },
            TokenStream::new(),
        ),
        Some(elements) => {
            let remote_doc = format!(
                "Submits `{name_str}` as a task and returns one `ObjectRef` per element of its result, \
                 each its own object. Each argument may be a value, an `ObjectRef` or an `&ObjectRef` of \
                 the parameter's type. Never blocks; failures surface from `get` on every element."
            );
            let assertion = quote::quote_spanned!(sig.output.span()=>
                const _: () = {
                    #[allow(dead_code)]
                    fn __rustyray_check_returns() { ::rustyray::__private::assert_multiple_returns::<#out_ty>(); }
                };
            );
            (
                quote! {
                    #[doc = #remote_doc]
                    #[track_caller]
                    #[allow(clippy::too_many_arguments)]
                    pub fn remote(#(#remote_params),*) -> (#(::rustyray::ObjectRef<#elements>,)*) {
                        ::rustyray::ReturnsBuilder::<#name, #args_ty>::new().remote(#(#names),*)
                    }
                },
                quote! {
                    /// Task options for one call; end the chain with `.remote(args..)`, which
                    /// returns one `ObjectRef` per element of the result.
                    pub fn options() -> ::rustyray::ReturnsBuilder<#name, #args_ty> {
                        ::rustyray::ReturnsBuilder::new()
                    }
                },
                assertion,
            )
        }
    };

    Ok(quote! {
        #func

        #returns_assertion

        #[doc = #marker_doc]
        #[allow(non_camel_case_types)]
        #vis struct #name {
            _private: (),
        }

        impl #name {
            /// The stable name this function is registered under.
            pub const NAME: &'static str = ::core::concat!(::core::module_path!(), "::", #name_str);

            #ops_consts

            #remote_fn

            #[doc = #enqueue_doc]
            #[allow(clippy::too_many_arguments)]
            pub fn enqueue<__Q: ::rustyray::__private::JobQueue>(
                queue: &__Q,
                #(#enqueue_params),*
            ) -> impl ::core::future::Future<
                Output = ::core::result::Result<__Q::Job<#out_ty>, __Q::Error>,
            > + ::core::marker::Send
            where
                #args_ty: ::rustyray::__private::JobArgs<__Q>,
            {
                ::rustyray::TaskBuilder::<#name, #args_ty>::new().enqueue_tuple(queue, (#(#enqueue_names,)*))
            }

            /// Enqueues one durable job per argument tuple, all in one transaction.
            pub fn enqueue_many<__Q: ::rustyray::__private::JobQueue>(
                queue: &__Q,
                items: impl ::core::iter::IntoIterator<Item = #args_ty>,
            ) -> impl ::core::future::Future<
                Output = ::core::result::Result<::std::vec::Vec<__Q::Job<#out_ty>>, __Q::Error>,
            > + ::core::marker::Send
            where
                #args_ty: ::rustyray::__private::JobArgs<__Q>,
            {
                ::rustyray::TaskBuilder::<#name, #args_ty>::new().enqueue_many(queue, items)
            }

            #options_fn
        }

        impl ::rustyray::__private::RemoteFunction<#args_ty> for #name {
            type Output = #out_ty;
            const NAME: &'static str = #name::NAME;
            const OUTPUT: ::rustyray::__private::OutputOps<#out_ty> = #output_ops;

            fn body(
                args: <#args_ty as ::rustyray::__private::ArgTuple>::TaskArgs,
            ) -> ::rustyray::__private::TaskBody {
                #body
            }

            #describe

            #decoders
        }

        ::rustyray::__private::inventory::submit! {
            ::rustyray::__private::RegisteredFunction::new::<#name, #args_ty>(
                ::core::concat!(::core::module_path!(), "::", #name_str),
                #display,
                #is_async,
            )
        }

        #sizes
    })
}

/// The attribute's arguments.
struct Attr {
    num_returns: Option<syn::LitInt>,
    streaming: bool,
}

/// Reads the attribute's arguments: nothing, `num_returns = n` or `streaming`.
fn parse_attr(attr: TokenStream) -> syn::Result<Attr> {
    let mut num_returns = None;
    let mut streaming = false;
    if attr.is_empty() {
        return Ok(Attr { num_returns, streaming });
    }
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("streaming") {
            if num_returns.is_some() || streaming {
                return Err(meta.error("`streaming` cannot be combined with `num_returns` or given twice"));
            }
            streaming = true;
            Ok(())
        } else if meta.path.is_ident("num_returns") {
            if streaming {
                return Err(meta.error("`num_returns` cannot be combined with `streaming`"));
            }
            if num_returns.is_some() {
                return Err(meta.error("`num_returns` is given twice"));
            }
            let value: syn::LitInt = meta.value()?.parse().map_err(|error| {
                syn::Error::new(error.span(), "`num_returns` takes a whole number: `num_returns = 2`")
            })?;
            let n: usize = value.base10_parse()?;
            if n < 2 {
                return Err(syn::Error::new(
                    value.span(),
                    "`num_returns` must be at least 2: a function with one result returns one `ObjectRef` \
                     without it",
                ));
            }
            num_returns = Some(value);
            Ok(())
        } else {
            Err(meta.error(
                "#[remote] takes only `num_returns = n` or `streaming`; set task options per call with \
                 `f::options()`",
            ))
        }
    });
    syn::parse::Parser::parse2(parser, attr)?;
    Ok(Attr { num_returns, streaming })
}

/// The element types of the tuple a `num_returns = n` function returns,
/// which must be written out as a tuple of exactly `n` elements.
fn tuple_elements(n: &syn::LitInt, ty: &TokenStream, output: &syn::ReturnType) -> syn::Result<Vec<syn::Type>> {
    let expected: usize = n.base10_parse()?;
    let span = match output {
        syn::ReturnType::Type(_, ty) => ty.span(),
        syn::ReturnType::Default => output.span(),
    };
    let mut parsed: syn::Type = syn::parse2(ty.clone())?;
    let tuple = loop {
        parsed = match parsed {
            syn::Type::Paren(inner) => *inner.elem,
            syn::Type::Group(inner) => *inner.elem,
            other => break other,
        };
    };
    let syn::Type::Tuple(tuple) = tuple else {
        return Err(syn::Error::new(
            span,
            format!(
                "`num_returns = {expected}` needs the function to return a tuple of {expected} elements, \
                 written out (`-> (A, B)` or `-> Result<(A, B), E>`), found `{}`",
                ty.to_string().replace(' ', "")
            ),
        ));
    };
    if tuple.elems.len() != expected {
        return Err(syn::Error::new(
            span,
            format!(
                "`num_returns = {expected}` does not match the result: the tuple has {} elements",
                tuple.elems.len()
            ),
        ));
    }
    Ok(tuple.elems.into_iter().collect())
}

/// Where the result type is written (the function's name when it returns nothing).
fn output_span(output: &syn::ReturnType) -> proc_macro2::Span {
    match output {
        syn::ReturnType::Type(_, ty) => ty.span(),
        syn::ReturnType::Default => output.span(),
    }
}

/// `decode_args` and `json_args`: the arguments of a call by name, one
/// parameter after the other, through the parameters' operation constants.
fn decoders(name: &syn::Ident, params: &[Param], args_ty: &TokenStream) -> TokenStream {
    let ops: Vec<&syn::Ident> = params.iter().map(|p| &p.ops).collect();
    let count = params.len();
    quote! {
        #[allow(unused_mut, clippy::unused_unit)]
        fn decode_args(
            bytes: &[u8],
        ) -> ::core::result::Result<<#args_ty as ::rustyray::__private::ArgTuple>::TaskArgs, ::rustyray::Error> {
            let mut decoder = ::rustyray::__private::ArgDecoder::new(bytes, #name::NAME);
            let args = (#(decoder.next(Self::#ops)?,)*);
            decoder.finish()?;
            ::core::result::Result::Ok(args)
        }

        #[allow(unused_mut, clippy::unused_unit)]
        fn json_args(
            name: &str,
            signature: &str,
            args: &::rustyray::__private::serde_json::Value,
        ) -> ::core::result::Result<<#args_ty as ::rustyray::__private::ArgTuple>::TaskArgs, ::rustyray::Error> {
            let mut json = ::rustyray::__private::JsonArgs::new(name, signature, args, #count)?;
            ::core::result::Result::Ok((#(json.next(Self::#ops)?,)*))
        }
    }
}

/// The body: take the arguments for the attempt, call the function, convert its result.
fn body(name: &syn::Ident, is_async: bool, params: &[Param], output: &signature::Output) -> TokenStream {
    let idents: Vec<&syn::Ident> = params.iter().map(|p| &p.ident).collect();
    let passes: Vec<TokenStream> = params.iter().map(Param::pass).collect();
    if is_async {
        let ret = output.convert(quote!(#name(#(#passes),*).await));
        let slot = signature::arg_slot(params);
        quote! {
            let slot = #slot;
            ::rustyray::__private::TaskBody::future(move |attempt| {
                let args = slot.take(attempt);
                async move {
                    let (#(#idents,)*) = args?;
                    #ret
                }
            })
        }
    } else {
        let ret = output.convert(quote!(#name(#(#passes),*)));
        let slot = signature::arg_slot(params);
        quote! {
            let slot = #slot;
            ::rustyray::__private::TaskBody::plain(move |attempt| {
                let (#(#idents,)*) = slot.take(attempt)?;
                #ret
            })
        }
    }
}
