//! Concurrency groups: `#[actor(concurrency_groups(io = 2, ..))]` on an
//! actor's impl block declares named groups with their limits, and
//! `#[rustyray::method(concurrency_group = "io")]` on an `async fn(&self)`
//! method puts it in one. This module reads both attributes, checks them
//! against each other, and strips the method attribute from the emitted impl.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Attribute, ImplItemFn, ReceiverKind};

/// The groups an impl block declares, in order, with their limits.
pub struct Declared(Vec<(syn::Ident, usize)>);

impl Declared {
    /// Reads the arguments of `#[actor(..)]` on an impl block.
    pub fn parse(attr: TokenStream) -> syn::Result<Declared> {
        let mut groups: Vec<(syn::Ident, usize)> = Vec::new();
        if attr.is_empty() {
            return Ok(Declared(groups));
        }
        let parser = syn::meta::parser(|meta| {
            if !meta.path.is_ident("concurrency_groups") {
                return Err(meta.error(
                    "#[actor] on an impl block takes only `concurrency_groups(name = N, ..)`; set other options \
                     per actor with `Type::options()`",
                ));
            }
            meta.parse_nested_meta(|group| {
                let Some(name) = group.path.get_ident().cloned() else {
                    return Err(group.error("a concurrency group is named by an identifier, as in `io = 2`"));
                };
                let limit: syn::LitInt = group.value()?.parse()?;
                let calls: usize = limit.base10_parse()?;
                if calls == 0 {
                    return Err(syn::Error::new(limit.span(), "a concurrency group must allow at least 1 call"));
                }
                if groups.iter().any(|(declared, _)| *declared == name) {
                    return Err(syn::Error::new(name.span(), format!("concurrency group `{name}` is declared twice")));
                }
                groups.push((name, calls));
                Ok(())
            })
        });
        syn::parse::Parser::parse2(parser, attr)?;
        Ok(Declared(groups))
    }

    /// `&[("io", 2), ..]`, for the generated `Type::options()`.
    pub fn to_tokens(&self) -> TokenStream {
        let names = self.0.iter().map(|(name, _)| name.to_string());
        let limits = self.0.iter().map(|(_, calls)| calls);
        quote!(&[#((#names, #limits)),*])
    }

    /// Takes `#[rustyray::method(..)]` off `func` and returns the group it
    /// names, checked: declared here, and on an `async fn(&self)` method.
    pub fn take_method_group(&self, func: &mut ImplItemFn) -> syn::Result<Option<String>> {
        let mut found: Option<(Attribute, String)> = None;
        let mut kept = Vec::with_capacity(func.attrs.len());
        for attr in func.attrs.drain(..) {
            if !is_method_attr(&attr) {
                kept.push(attr);
                continue;
            }
            if found.is_some() {
                return Err(syn::Error::new_spanned(&attr, "a method takes one `#[rustyray::method(..)]` attribute"));
            }
            let mut group = None;
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("concurrency_group") {
                    let name: syn::LitStr = meta.value()?.parse()?;
                    group = Some(name.value());
                    Ok(())
                } else {
                    Err(meta.error("`#[rustyray::method]` takes `concurrency_group = \"name\"`"))
                }
            })?;
            let Some(group) = group else {
                return Err(syn::Error::new_spanned(
                    &attr,
                    "`#[rustyray::method]` takes `concurrency_group = \"name\"`",
                ));
            };
            found = Some((attr, group));
        }
        func.attrs = kept;
        let Some((attr, group)) = found else { return Ok(None) };
        let shared = matches!(func.sig.receiver().map(|r| &r.kind), Some(ReceiverKind::Reference(_, _, None)));
        if func.sig.asyncness.is_none() || !shared {
            return Err(syn::Error::new_spanned(
                &attr,
                "concurrency groups hold `async fn(&self)` methods: a plain method or a `&mut self` method runs \
                 alone, with the actor's state to itself",
            ));
        }
        if !self.0.iter().any(|(name, _)| *name == group) {
            let hint = if self.0.is_empty() {
                format!("declare it on the impl block: `#[actor(concurrency_groups({group} = 1))]`")
            } else {
                let declared: Vec<String> = self.0.iter().map(|(name, _)| name.to_string()).collect();
                format!("the impl block declares {}", declared.join(", "))
            };
            return Err(syn::Error::new_spanned(&attr, format!("concurrency group `{group}` is not declared: {hint}")));
        }
        Ok(Some(group))
    }
}

/// Whether `attr` is `#[rustyray::method(..)]` (or `#[method(..)]`, imported).
fn is_method_attr(attr: &Attribute) -> bool {
    let path = attr.path();
    match path.segments.len() {
        1 => path.is_ident("method"),
        2 => path.segments[0].ident == "rustyray" && path.segments[1].ident == "method",
        _ => false,
    }
}
