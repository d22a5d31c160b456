//! `#[actor]`: a struct and its impl block become an actor.
//!
//! On the struct, the expansion keeps the struct and adds the method surface
//! `TypeRemote` (what `ActorHandle<Type>` dereferences to) and the `Actor`
//! implementation. On the impl block, it keeps the methods and adds
//! `Type::remote(..)` / `Type::options()` from the `new` constructor, and one
//! method on `TypeRemote` per `pub` (or `pub(crate)`, `pub(super)`, ...)
//! method taking `&self` or `&mut self`, with that method's visibility and
//! parameter names. Private functions stay plain ones.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ImplItem, ImplItemFn, Item, ItemImpl, ReceiverKind, ReturnType, Type, Visibility};

use crate::groups::Declared;
use crate::signature::{self, Param};

const WHAT: &str = "an actor method";

pub fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let item = syn::parse2::<Item>(item)?;
    if !attr.is_empty() && !matches!(item, Item::Impl(_)) {
        return Err(syn::Error::new(
            attr.span(),
            "#[actor] on the type takes no arguments; declare concurrency groups on the impl block \
             (`#[actor(concurrency_groups(name = N))]`) and set other options per actor with `Type::options()`",
        ));
    }
    match item {
        Item::Struct(item) => type_def(&item.ident, &item.vis, &item.generics, quote!(#item)),
        Item::Enum(item) => type_def(&item.ident, &item.vis, &item.generics, quote!(#item)),
        Item::Impl(item) => impl_block(item, &Declared::parse(attr)?),
        other => Err(syn::Error::new(
            other.span(),
            "#[actor] goes on a struct (or enum) and on its impl block, which holds `new` and the methods",
        )),
    }
}

/// The struct: keep it, add the method surface and the `Actor` implementation.
fn type_def(
    name: &syn::Ident,
    vis: &Visibility,
    generics: &syn::Generics,
    item: TokenStream,
) -> syn::Result<TokenStream> {
    if !generics.params.is_empty() || generics.where_clause.is_some() {
        return Err(syn::Error::new(
            generics.span(),
            "an actor cannot be generic: it is created by type name and its methods are called by name; \
             make a non-generic actor for each type you need",
        ));
    }
    let remote = format_ident!("{}Remote", name);
    let doc = format!(
        "Remote method calls of the [`{name}`] actor: what `ActorHandle<{name}>` dereferences to. \
         Each method submits an actor task and returns an `ObjectRef` at once."
    );
    let name_str = name.to_string();
    Ok(quote! {
        #item

        #[doc = #doc]
        #[derive(Clone)]
        #vis struct #remote {
            actor: ::rustyray::__private::ActorRef,
        }

        impl ::rustyray::__private::ActorRemote for #remote {
            fn from_actor_ref(actor: ::rustyray::__private::ActorRef) -> Self {
                #remote { actor }
            }

            fn actor_ref(&self) -> &::rustyray::__private::ActorRef {
                &self.actor
            }
        }

        impl ::rustyray::__private::Actor for #name {
            type Remote = #remote;
            const TYPE_NAME: &'static str = ::core::concat!(::core::module_path!(), "::", #name_str);
        }
    })
}

/// Methods an `ActorHandle` answers to before its `Deref` to the generated
/// surface is tried, with where each comes from: its own methods, and those
/// of the traits it implements (or that cover every type) that code commonly
/// has in scope. A remote method of one of these names would never be called
/// (`handle.eq(x)` compares handles), so it is refused at compile time.
const HANDLE_METHODS: &[(&str, &str)] = &[
    ("id", "`ActorHandle` has a method of that name"),
    ("ready", "`ActorHandle` has a method of that name"),
    ("kill", "`ActorHandle` has a method of that name"),
    ("actor_ref", "`ActorHandle` has a method of that name"),
    ("clone", "`ActorHandle` implements `Clone`"),
    ("clone_from", "`ActorHandle` implements `Clone`"),
    ("eq", "`ActorHandle` implements `PartialEq`"),
    ("ne", "`ActorHandle` implements `PartialEq`"),
    ("fmt", "`ActorHandle` implements `Debug` (wherever that trait is in scope)"),
    ("deref", "`ActorHandle` implements `Deref` (wherever that trait is in scope)"),
    ("serialize", "`ActorHandle` implements serde's `Serialize` (wherever that trait is in scope)"),
    ("get_size", "`ActorHandle` implements `GetSize` (wherever that trait is in scope)"),
    ("get_heap_size", "`ActorHandle` implements `GetSize` (wherever that trait is in scope)"),
    ("get_size_with_tracker", "`ActorHandle` implements `GetSize` (wherever that trait is in scope)"),
    ("get_heap_size_with_tracker", "`ActorHandle` implements `GetSize` (wherever that trait is in scope)"),
    ("into", "every type implements `Into` (the prelude's)"),
    ("try_into", "every type implements `TryInto` (the prelude's)"),
    ("to_owned", "every `Clone` type implements `ToOwned` (the prelude's)"),
    ("clone_into", "every `Clone` type implements `ToOwned` (the prelude's)"),
    ("borrow", "every type implements `Borrow` (wherever that trait is in scope)"),
    ("borrow_mut", "every type implements `BorrowMut` (wherever that trait is in scope)"),
    ("type_id", "every type implements `Any` (wherever that trait is in scope)"),
];

/// The impl block: keep it, add the constructor and the remote methods.
fn impl_block(mut item: ItemImpl, declared: &Declared) -> syn::Result<TokenStream> {
    if let Some((path, _)) = &item.trait_ {
        return Err(syn::Error::new(
            path.span(),
            "#[actor] goes on the type's own impl block (`impl Type { .. }`), not on a trait impl",
        ));
    }
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        return Err(syn::Error::new(
            item.generics.span(),
            "an actor cannot be generic: make a non-generic actor for each type you need",
        ));
    }
    let Type::Path(self_path) = &*item.self_ty else {
        return Err(syn::Error::new(item.self_ty.span(), "#[actor] needs `impl Type { .. }` with a named type"));
    };
    let Some(type_name) = self_path.path.segments.last().map(|s| s.ident.clone()) else {
        return Err(syn::Error::new(item.self_ty.span(), "#[actor] needs `impl Type { .. }` with a named type"));
    };
    let self_ty = &item.self_ty;
    let remote = format_ident!("{}Remote", type_name);

    // Concurrency-group attributes come off every function first, so the
    // emitted impl block carries none.
    let mut groups = Vec::new();
    for impl_item in &mut item.items {
        let ImplItem::Fn(func) = impl_item else { continue };
        let group = declared.take_method_group(func)?;
        if group.is_some() && matches!(func.vis, Visibility::Inherited) {
            return Err(syn::Error::new(
                func.sig.ident.span(),
                "a private function is not an actor method, so it has no concurrency group: make it `pub`",
            ));
        }
        groups.push(group);
    }
    let mut constructor = None;
    let mut methods = Vec::new();
    for (impl_item, group) in item.items.iter().filter(|i| matches!(i, ImplItem::Fn(_))).zip(groups) {
        let ImplItem::Fn(func) = impl_item else { continue };
        // A private function stays a plain one (a helper of the methods);
        // `pub` and restricted ones (`pub(crate)`, `pub(super)`, `pub(in ..)`)
        // are on the remote surface, with the same visibility.
        if matches!(func.vis, Visibility::Inherited) {
            continue;
        }
        match func.sig.receiver() {
            None if func.sig.ident == "new" => constructor = Some(func),
            None => {}
            Some(receiver) => {
                if !matches!(receiver.kind, ReceiverKind::Reference(..)) {
                    return Err(syn::Error::new(
                        receiver.span(),
                        "an actor method takes `&self` or `&mut self`: taking `self` by value would consume the \
                         actor; return what you need instead",
                    ));
                }
                let ident = func.sig.ident.to_string();
                if let Some((_, why)) = HANDLE_METHODS.iter().find(|(name, _)| *name == ident) {
                    return Err(syn::Error::new(
                        func.sig.ident.span(),
                        format!(
                            "an actor method cannot be named `{ident}`: {why}, which `handle.{ident}(..)` \
                             would call instead of the actor's method; rename the method"
                        ),
                    ));
                }
                methods.push((func, group));
            }
        }
    }
    let Some(constructor) = constructor else {
        return Err(syn::Error::new(
            Span::call_site(),
            format!("an actor needs a constructor: add `pub fn new(..) -> Self` to `impl {type_name}`"),
        ));
    };

    let constructor_code = constructor_impl(self_ty, constructor, declared)?;
    let (method_checks, method_code): (Vec<TokenStream>, Vec<TokenStream>) = methods
        .iter()
        .map(|(m, group)| method(self_ty, &type_name, m, group.as_deref()))
        .collect::<syn::Result<Vec<_>>>()?
        .into_iter()
        .unzip();
    let actor_check = quote_spanned!(self_ty.span()=>
        const _: () = {
            #[allow(dead_code)]
            fn __rustyray_check_actor() { ::rustyray::__private::assert_actor::<#self_ty>(); }
        };
    );

    Ok(quote! {
        #item

        #actor_check

        #(#method_checks)*

        #constructor_code

        impl #remote {
            #(#method_code)*
        }
    })
}

/// `Type::remote(..)`, `Type::options()` and the constructor body.
fn constructor_impl(self_ty: &Type, constructor: &ImplItemFn, declared: &Declared) -> syn::Result<TokenStream> {
    let sig = &constructor.sig;
    signature::check_common(sig, "an actor constructor")?;
    if sig.asyncness.is_some() {
        return Err(syn::Error::new(
            sig.asyncness.span(),
            "an actor constructor cannot be `async`; build the state in `new` and do async setup in a method",
        ));
    }
    let mut params = signature::params(sig.inputs.iter(), "an actor constructor")?;
    signature::prefix_ops(&mut params, "new");
    let fallible = match &sig.output {
        ReturnType::Default => {
            return Err(syn::Error::new(sig.span(), "an actor constructor returns `Self` (or `Result<Self, E>`)"));
        }
        ReturnType::Type(_, ty) => signature::output(&sig.output, "an actor constructor")?.fallible && !is_self(ty),
    };
    let stored: Vec<&TokenStream> = params.iter().map(|p| &p.stored).collect();
    let idents: Vec<&syn::Ident> = params.iter().map(|p| &p.ident).collect();
    let names: Vec<&syn::Ident> = params.iter().map(|p| &p.name).collect();
    let passes: Vec<TokenStream> = params.iter().map(Param::pass).collect();
    let args_ty = quote!((#(#stored,)*));
    let remote_params = remote_params(&params);
    let vis = &constructor.vis;
    let build = if fallible {
        quote! {
            match <#self_ty>::new(#(#passes),*) {
                ::core::result::Result::Ok(state) => ::core::result::Result::Ok(
                    ::std::boxed::Box::new(state) as ::rustyray::__private::ActorInstance
                ),
                ::core::result::Result::Err(error) => ::core::result::Result::Err({
                        #[allow(unused_imports)]
                        use ::rustyray::__private::{DisplayOnly as _, KeepSource as _};
                        ::rustyray::__private::FailedWith(error).into_task_error()
                    }),
            }
        }
    } else {
        quote!(::core::result::Result::Ok(::std::boxed::Box::new(<#self_ty>::new(#(#passes),*)) as ::rustyray::__private::ActorInstance))
    };
    let describe = signature::describe_fn(&params, &args_ty);
    let slot = signature::arg_slot(&params);
    let ops_consts = signature::ops_consts(&params);
    let groups = declared.to_tokens();
    let sizes = signature::size_registrations(stored.iter().copied(), Some(self_ty));
    Ok(quote! {
        #sizes

        impl ::rustyray::__private::ActorConstructor<#args_ty> for #self_ty {
            fn construct(
                args: <#args_ty as ::rustyray::__private::ArgTuple>::TaskArgs,
            ) -> ::rustyray::__private::TaskBody {
                let slot = #slot;
                ::rustyray::__private::TaskBody::construct(move |attempt| {
                    let (#(#idents,)*) = slot.take(attempt)?;
                    #build
                })
            }

            #describe
        }

        impl #self_ty {
            #ops_consts

            /// Creates the actor as a task and returns its handle at once. Each
            /// argument may be a value, an `ObjectRef` or an `&ObjectRef` of the
            /// parameter's type.
            #[track_caller]
            #[allow(clippy::too_many_arguments)]
            #vis fn remote(#(#remote_params),*) -> ::rustyray::ActorHandle<Self> {
                Self::options().remote(#(#names),*)
            }

            /// Actor options (`name`, `max_restarts`, `max_concurrency`, ...);
            /// end the chain with `.remote(args..)`.
            #vis fn options() -> ::rustyray::ActorBuilder<Self, #args_ty> {
                ::rustyray::ActorBuilder::new().declare_concurrency_groups(#groups)
            }
        }
    })
}

/// `sig` with every `Self` in its parameter and return types replaced by `self_ty`.
fn spell_out_self(sig: &syn::Signature, self_ty: &Type) -> syn::Result<syn::Signature> {
    let with = self_ty.to_token_stream();
    let spell = |ty: &Type| syn::parse2::<Type>(signature::replace_self(ty.to_token_stream(), &with));
    let mut sig = sig.clone();
    for input in &mut sig.inputs {
        if let FnArg::Typed(typed) = input {
            *typed.ty = spell(&typed.ty)?;
        }
    }
    if let ReturnType::Type(_, ty) = &mut sig.output {
        **ty = spell(ty)?;
    }
    Ok(sig)
}

fn is_self(ty: &Type) -> bool {
    matches!(ty, Type::Path(path) if path.path.is_ident("Self"))
}

/// The parameters of a generated `remote(..)` method, under the user's names.
fn remote_params(params: &[Param]) -> Vec<TokenStream> {
    params
        .iter()
        .map(|p| {
            let name = &p.name;
            let stored = &p.stored;
            quote!(#name: impl ::core::convert::Into<::rustyray::TaskArg<#stored>>)
        })
        .collect()
}

/// One remote method on the surface (wraps its arguments and submits an actor
/// task), and the compile-time checks of its types.
fn method(
    self_ty: &Type,
    type_name: &syn::Ident,
    func: &ImplItemFn,
    group: Option<&str>,
) -> syn::Result<(TokenStream, TokenStream)> {
    // The generated method lives on `TypeRemote` and its checks in free
    // functions, where `Self` would mean something else or nothing: the
    // signature is read with `Self` spelled out as the actor's type.
    let sig = &spell_out_self(&func.sig, self_ty)?;
    signature::check_common(sig, WHAT)?;
    let exclusive = match sig.receiver().map(|r| &r.kind) {
        Some(ReceiverKind::Reference(_, _, mutability)) => mutability.is_some(),
        _ => false,
    };
    let typed: Vec<&FnArg> = sig.inputs.iter().filter(|input| matches!(input, FnArg::Typed(_))).collect();
    let item = crate::streaming::stream_item(sig, &typed, "an actor method", true)?;
    let count = typed.len() - usize::from(item.is_some());
    let mut params = signature::params(typed.iter().copied().take(count), WHAT)?;
    signature::prefix_ops(&mut params, &sig.ident.to_string());
    let output = signature::output(&sig.output, WHAT)?;
    if item.is_some() {
        crate::streaming::check_output(sig, &output, "a streaming actor method")?;
    }
    let name = &sig.ident;
    let method_path = format!("{type_name}::{name}");
    let stored: Vec<&TokenStream> = params.iter().map(|p| &p.stored).collect();
    let idents: Vec<&syn::Ident> = params.iter().map(|p| &p.ident).collect();
    let names: Vec<&syn::Ident> = params.iter().map(|p| &p.name).collect();
    let mut passes: Vec<TokenStream> = params.iter().map(Param::pass).collect();
    if item.is_some() {
        passes.push(quote!(__rustyray_yield));
    }
    let args_ty = quote!((#(#stored,)*));
    let out_ty = &output.ty;
    let remote_params = remote_params(&params);
    let vis = &func.vis;
    let state = if exclusive {
        quote!(::rustyray::__private::state_mut::<#self_ty>(state)?)
    } else {
        quote!(::rustyray::__private::state_ref::<#self_ty>(state)?)
    };
    // A streaming method takes its attempt's `Yield` first and applies the
    // stream's retry rule to its result, as a streaming function does.
    let open = item.as_ref().map(|_| quote!(let __rustyray_yield = source.attempt(attempt)?;));
    let finish = |ret: TokenStream| match item {
        Some(_) => quote!(source.finish(#ret)),
        None => ret,
    };
    let body = if sig.asyncness.is_some() {
        let ret = finish(output.convert(quote!(this.#name(#(#passes),*).await)));
        let (constructor, group) = match (exclusive, group) {
            (true, _) => (quote!(exclusive_async), quote!()),
            (false, None) => (quote!(shared_async), quote!()),
            (false, Some(group)) => (quote!(shared_async_in), quote!(#group,)),
        };
        let source = item.as_ref().map(|_| quote!(let source = source.clone();));
        quote! {
            ::rustyray::__private::ActorMethod::#constructor(#group move |attempt, state| {
                let args = slot.take(attempt);
                #source
                ::std::boxed::Box::pin(async move {
                    #open
                    let (#(#idents,)*) = args?;
                    let this = #state;
                    #ret
                })
            })
        }
    } else {
        let ret = finish(output.convert(quote!(this.#name(#(#passes),*))));
        let constructor = if exclusive { quote!(exclusive) } else { quote!(shared) };
        quote! {
            ::rustyray::__private::ActorMethod::#constructor(move |attempt, state| {
                #open
                let (#(#idents,)*) = slot.take(attempt)?;
                let this = #state;
                #ret
            })
        }
    };
    let ops_consts = signature::ops_consts(&params);
    let slot = signature::arg_slot(&params);
    let function =
        quote!(::rustyray::__private::FunctionId::new(&::core::concat!(::core::module_path!(), "::", #method_path)));
    let (returns, submit, doc, result_check, result_ty) = match &item {
        None => (
            quote!(::rustyray::ObjectRef<#out_ty>),
            quote!(self.actor.call(#function, deps, #body)),
            format!(
                "Calls [`{type_name}::{name}`] on the actor as an actor task; returns an `ObjectRef` to its result \
                 at once. Calls from one caller run in the order they were made."
            ),
            {
                let check =
                    quote_spanned!(sig.output.span()=> ::rustyray::__private::assert_remote_output::<#out_ty, _>(););
                quote! {
                    const _: () = {
                        #[allow(dead_code)]
                        fn __rustyray_check_output() { #check }
                    };
                }
            },
            out_ty.clone(),
        ),
        Some(item) => (
            quote!(::rustyray::ObjectStream<#item>),
            quote!(self.actor.call_stream(#function, deps, ::rustyray::__private::DEFAULT_BUFFER, move |source| #body)),
            format!(
                "Calls the streaming method [`{type_name}::{name}`] on the actor as an actor task; returns the \
                 `ObjectStream` of the items it sends at once (at most 16 wait unread). Calls from one caller run \
                 in the order they were made; dropping the stream cancels the call."
            ),
            crate::streaming::item_check(item),
            item.to_token_stream(),
        ),
    };
    let sizes = signature::size_registrations(stored.iter().copied().chain([&result_ty]), Some(self_ty));
    let checks = quote! {
        #sizes
        #result_check
    };
    let code = quote! {
        #ops_consts

        #[doc = #doc]
        #[track_caller]
        #[allow(clippy::too_many_arguments)]
        #vis fn #name(&self, #(#remote_params),*) -> #returns {
            let args = (#(::core::convert::Into::into(#names),)*);
            let deps = <#args_ty as ::rustyray::__private::ArgTuple>::dependencies(&args);
            let slot = #slot;
            #submit
        }
    };
    Ok((checks, code))
}
