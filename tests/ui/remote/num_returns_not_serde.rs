//! A `num_returns` tuple with an element that is not serde: one error, at the result type.

#[derive(Clone)]
struct Opaque;

#[rustyray::remote(num_returns = 2)]
fn split(n: i64) -> (i64, Opaque) {
    (n, Opaque)
}

fn main() {}
