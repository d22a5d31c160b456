#[rustyray::actor]
pub struct Counter {
    n: i64,
}

#[rustyray::actor]
impl Counter {
    pub fn new() -> Self {
        Counter { n: 0 }
    }

    /// `handle.eq(x)` would compare handles, never call this.
    pub fn eq(&self, other: i64) -> bool {
        self.n == other
    }
}

fn main() {}
