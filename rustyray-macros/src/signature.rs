//! Reading a function signature into what the generated code needs: each
//! parameter's stored type and how it is passed, and the output type.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote};
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, PathArguments, ReturnType, Signature, Type, TypeReference};

/// How a parameter receives its argument.
pub enum Passing {
    /// `x: T`: the task gets an owned `T`.
    Owned,
    /// `x: &U`: the task borrows the stored `<U as ToOwned>::Owned` as `&U`.
    Borrowed(Box<Type>),
}

/// One parameter of a remote function or actor method.
pub struct Param {
    /// The generated binding for the argument.
    pub ident: syn::Ident,
    /// The parameter's name as the user wrote it (the generated binding when
    /// the parameter is a pattern, not a name): what generated signatures
    /// show, in rustdoc and editors.
    pub name: syn::Ident,
    /// The type the argument is stored as.
    pub stored: TokenStream,
    /// How the parameter receives it.
    pub passing: Passing,
    /// Where the parameter's type is written, for error messages.
    pub span: Span,
    /// The associated constant holding the parameter's checked operations
    /// (`ArgOps`), on the type whose impl the generated code is in.
    pub ops: syn::Ident,
}

impl Param {
    /// The expression passing the (resolved) argument `ident` to the function.
    pub fn pass(&self) -> TokenStream {
        let ident = &self.ident;
        match &self.passing {
            Passing::Owned => {
                let ops = &self.ops;
                quote!(#ident.into_owned_with(Self::#ops.clone)?)
            }
            Passing::Borrowed(inner) => {
                let stored = &self.stored;
                quote!(<#stored as ::core::borrow::Borrow<#inner>>::borrow(#ident.resolve()?))
            }
        }
    }
}

/// What the function returns.
pub struct Output {
    /// The type of the value the task produces.
    pub ty: TokenStream,
    /// Whether the body returns a `Result` whose `Err` fails the task.
    pub fallible: bool,
}

impl Output {
    /// Converts the function's return value `ret` into a body result.
    pub fn convert(&self, ret: TokenStream) -> TokenStream {
        if self.fallible {
            quote! {
                match #ret {
                    ::core::result::Result::Ok(value) => ::core::result::Result::Ok(
                        ::std::sync::Arc::new(value) as ::rustyray::__private::Value
                    ),
                    ::core::result::Result::Err(error) => ::core::result::Result::Err({
                        #[allow(unused_imports)]
                        use ::rustyray::__private::{DisplayOnly as _, KeepSource as _};
                        ::rustyray::__private::FailedWith(error).into_task_error()
                    }),
                }
            }
        } else {
            quote!(::core::result::Result::Ok(::std::sync::Arc::new(#ret) as ::rustyray::__private::Value))
        }
    }
}

/// Rejects what a remote function or actor method cannot be.
pub fn check_common(sig: &Signature, what: &str) -> syn::Result<()> {
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new(
            sig.generics.span(),
            format!(
                "{what} cannot be generic: it is registered under one name with one concrete signature; \
                 write a non-generic wrapper for each type you need"
            ),
        ));
    }
    if let syn::Safety::Unsafe(token) = &sig.safety {
        return Err(syn::Error::new(token.span(), format!("{what} cannot be `unsafe`")));
    }
    if let Some(abi) = &sig.abi {
        return Err(syn::Error::new(abi.span(), format!("{what} cannot have an `extern` ABI")));
    }
    if let Some(variadic) = &sig.variadic {
        return Err(syn::Error::new(variadic.span(), format!("{what} cannot be variadic")));
    }
    if let Some(constness) = &sig.constness {
        return Err(syn::Error::new(constness.span(), format!("{what} cannot be `const`")));
    }
    Ok(())
}

/// Reads the typed (non-receiver) parameters.
pub fn params<'a>(inputs: impl Iterator<Item = &'a FnArg>, what: &str) -> syn::Result<Vec<Param>> {
    let mut params = Vec::new();
    for (index, input) in inputs.enumerate() {
        let FnArg::Typed(typed) = input else {
            return Err(syn::Error::new(input.span(), "unexpected receiver"));
        };
        let ty = &*typed.ty;
        reject_impl_trait(ty, what)?;
        let ident = format_ident!("__rustyray_arg{}", index);
        let ops = format_ident!("__rustyray_arg{}", index);
        let name = match &*typed.pat {
            syn::Pat::Ident(pat) if pat.subpat.is_none() => pat.ident.clone(),
            _ => ident.clone(),
        };
        let param = match ty {
            Type::Reference(TypeReference { mutability: Some(token), .. }) => {
                return Err(syn::Error::new(
                    token.span(),
                    format!(
                        "{what} cannot take a `&mut` parameter: its argument may be an object other tasks share; \
                         take the value by `T` (or by `&T` to read it in place)"
                    ),
                ));
            }
            Type::Reference(reference) => {
                if let Some(lifetime) = &reference.lifetime
                    && lifetime.ident != "_"
                {
                    return Err(syn::Error::new(
                        lifetime.span(),
                        format!("{what} cannot name lifetimes: write the parameter as `&T`"),
                    ));
                }
                let inner = reference.elem.clone();
                Param {
                    ident,
                    name,
                    stored: quote!(<#inner as ::std::borrow::ToOwned>::Owned),
                    passing: Passing::Borrowed(inner),
                    span: ty.span(),
                    ops,
                }
            }
            _ => Param { ident, name, stored: ty.to_token_stream(), passing: Passing::Owned, span: ty.span(), ops },
        };
        params.push(param);
    }
    Ok(params)
}

/// Reads the output type: `T` for `-> T`, `T` for `-> Result<T, E>`, `()` for none.
pub fn output(ret: &ReturnType, what: &str) -> syn::Result<Output> {
    let ReturnType::Type(_, ty) = ret else {
        return Ok(Output { ty: quote!(()), fallible: false });
    };
    reject_impl_trait(ty, what)?;
    if let Type::Reference(reference) = &**ty
        && reference.lifetime.as_ref().is_none_or(|lifetime| lifetime.ident != "static")
    {
        return Err(syn::Error::new(
            reference.span(),
            format!("{what} cannot return a reference: its result is stored as an object; return an owned value"),
        ));
    }
    if let Type::Path(path) = &**ty
        && path.qself.is_none()
        && let Some(last) = path.path.segments.last()
        && last.ident == "Result"
        && let PathArguments::AngleBracketed(args) = &last.arguments
        && let Some(GenericArgument::Type(ok)) = args.args.first()
    {
        return Ok(Output { ty: ok.to_token_stream(), fallible: true });
    }
    Ok(Output { ty: ty.to_token_stream(), fallible: false })
}

fn reject_impl_trait(ty: &Type, what: &str) -> syn::Result<()> {
    struct Finder(Option<Span>);
    impl<'ast> syn::visit::Visit<'ast> for Finder {
        fn visit_type_impl_trait(&mut self, node: &'ast syn::TypeImplTrait) {
            self.0.get_or_insert(node.span());
        }
    }
    let mut finder = Finder(None);
    syn::visit::Visit::visit_type(&mut finder, ty);
    match finder.0 {
        Some(span) => Err(syn::Error::new(
            span,
            format!(
                "{what} cannot use `impl Trait` in its signature: arguments and results are stored and \
                 serialized, so their concrete type must be known; name the concrete type"
            ),
        )),
        None => Ok(()),
    }
}

/// Names the parameters' operation constants `__rustyray_{prefix}_arg{i}`,
/// for several signatures whose constants share one impl block.
pub fn prefix_ops(params: &mut [Param], prefix: &str) {
    for (index, param) in params.iter_mut().enumerate() {
        param.ops = format_ident!("__rustyray_{}_arg{}", prefix, index);
    }
}

/// The associated constants holding each parameter's checked operations.
/// Each is written at the parameter's type: a type that cannot be a
/// parameter is reported there, once, and nowhere else, since the rest of
/// the generated code reaches the type's `Clone` and serde only through
/// these constants.
pub fn ops_consts(params: &[Param]) -> TokenStream {
    let consts = params.iter().map(|p| {
        let (stored, ops) = (&p.stored, &p.ops);
        let value = quote::quote_spanned!(p.span=> ::rustyray::__private::arg_ops::<#stored, _>());
        quote! {
            #[doc(hidden)]
            #[allow(non_upper_case_globals)]
            const #ops: ::rustyray::__private::ArgOps<#stored> = #value;
        }
    });
    quote!(#(#consts)*)
}

/// `ArgSlot::with_clone(args, ..)`: holds the wrapped arguments `args`,
/// copied through the parameters' operation constants (on `Self`).
pub fn arg_slot(params: &[Param]) -> TokenStream {
    if params.is_empty() {
        return quote!(::rustyray::__private::ArgSlot::new(args));
    }
    let idents: Vec<&syn::Ident> = params.iter().map(|p| &p.ident).collect();
    let copies = params.iter().map(|p| {
        let (ident, ops) = (&p.ident, &p.ops);
        quote!(Self::#ops.clone_arg(#ident))
    });
    quote! {
        ::rustyray::__private::ArgSlot::with_clone(args, |args| {
            let (#(#idents,)*) = args;
            (#(#copies,)*)
        })
    }
}

/// Registers each type of a signature with the object store's sizing table
/// (`rustyray_core::size`): a type that implements `GetSize` is measured
/// when its values are stored, by a result or through `put`. The
/// registrations are module-level items, so `Self` (in an actor's
/// signatures) is spelled out as `self_ty`.
pub fn size_registrations<'a>(
    types: impl IntoIterator<Item = &'a TokenStream>,
    self_ty: Option<&syn::Type>,
) -> TokenStream {
    let entries = types.into_iter().map(|ty| {
        let ty = match self_ty {
            Some(self_ty) => replace_self(ty.clone(), &self_ty.to_token_stream()),
            None => ty.clone(),
        };
        quote! {
            ::rustyray::__private::inventory::submit! {
                ::rustyray::__private::SignatureType::new(#[allow(clippy::needless_borrow)] || {
                    #[allow(unused_imports)]
                    use ::rustyray::__private::{ProbeGetSize as _, ProbeUnsized as _};
                    (&&::rustyray::__private::SizeProbe::<#ty>::new()).sized_type()
                })
            }
        }
    });
    quote!(#(#entries)*)
}

/// `tokens` with every `Self` replaced by `with`.
pub fn replace_self(tokens: TokenStream, with: &TokenStream) -> TokenStream {
    tokens
        .into_iter()
        .flat_map(|tree| -> TokenStream {
            match tree {
                proc_macro2::TokenTree::Ident(ident) if ident == "Self" => with.clone(),
                proc_macro2::TokenTree::Group(group) => {
                    let mut replaced = proc_macro2::Group::new(group.delimiter(), replace_self(group.stream(), with));
                    replaced.set_span(group.span());
                    proc_macro2::TokenTree::Group(replaced).into()
                }
                other => other.into(),
            }
        })
        .collect()
}

/// `fn describe(..)`: the arguments as text, for calls that record them,
/// through the parameters' operation constants (on `Self`).
pub fn describe_fn(params: &[Param], args_ty: &TokenStream) -> TokenStream {
    let idents: Vec<&syn::Ident> = params.iter().map(|p| &p.ident).collect();
    let parts = params.iter().map(|p| {
        let (ops, ident) = (&p.ops, &p.ident);
        quote!(Self::#ops.describe_arg(#ident))
    });
    quote! {
        #[allow(clippy::unused_unit)]
        fn describe(
            args: &<#args_ty as ::rustyray::__private::ArgTuple>::TaskArgs,
        ) -> ::std::string::String {
            let (#(#idents,)*) = args;
            ::rustyray::__private::describe_args(&[#(#parts),*])
        }
    }
}

/// The signature as readable text, e.g. `fn add(a: i64, b: i64) -> i64`.
pub fn display(sig: &Signature) -> String {
    let raw = sig.to_token_stream().to_string();
    let mut out = String::with_capacity(raw.len());
    let tokens: Vec<&str> = raw.split(' ').collect();
    for (i, token) in tokens.iter().enumerate() {
        let next = tokens.get(i + 1).copied().unwrap_or("");
        out.push_str(token);
        let tight_after = matches!(*token, "(" | "<" | "&" | "::" | "'");
        let tight_before = matches!(next, ")" | "," | ":" | "<" | ">" | "::" | "(" | "" | ">," | ">)");
        let space_before_paren = next == "(" && matches!(*token, "->" | ",");
        if (!tight_after && !tight_before) || space_before_paren || (*token == ":" && next != ":") {
            out.push(' ');
        }
    }
    out.replace("> (", ">(").replace("& mut", "&mut ")
}
