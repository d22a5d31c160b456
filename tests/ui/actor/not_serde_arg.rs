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

    pub fn add(&mut self, _o: Opaque) -> i64 {
        self.n
    }
}

fn main() {}
