//! A method whose result type is not serde `Serialize`: one error, at the result type.

#[derive(Clone)]
pub struct Opaque;

#[rustyray::actor]
pub struct Counter {
    n: i64,
}

#[rustyray::actor]
impl Counter {
    pub fn new() -> Self {
        Counter { n: 0 }
    }

    pub fn snapshot(&self) -> Opaque {
        let _ = self.n;
        Opaque
    }
}

fn main() {}
