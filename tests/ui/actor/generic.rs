#[rustyray::actor]
pub struct Holder<T> {
    value: T,
}

fn main() {}
